"""``fawn doctor``: versions, execution providers, codecs and the models found."""

from __future__ import annotations

import argparse
import json
import sys


def add_doctor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="versions, execution providers, codecs and models found")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from streamer.tools.doctor import format_report, report

    data = report()
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if args.json else format_report(data))
    return 0 if data["ok"] else 1
