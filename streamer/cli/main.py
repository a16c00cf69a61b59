"""The ``fawn`` command line: the parser of every command (one module each in this package) and ``main``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from streamer.cli.batch import add_batch_parser
from streamer.cli.bench import add_bench_parser
from streamer.cli.doctor import add_doctor_parser
from streamer.cli.enroll import add_enroll_parser
from streamer.cli.eval import add_eval_parser, add_sweep_parser
from streamer.cli.export import add_export_parser
from streamer.cli.models import add_models_parser
from streamer.cli.run import add_run_parser, run_overrides
from streamer.cli.serve import add_serve_parser
from streamer.core.errors import FawnError
from streamer.core.redact import redact_log_handlers, redact_text

__all__ = ["build_parser", "main", "run_overrides"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fawn", description="Real-time face anonymizer for live video.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_run_parser, add_doctor_parser, add_bench_parser, add_enroll_parser, add_serve_parser,
                add_export_parser, add_eval_parser, add_sweep_parser, add_batch_parser, add_models_parser):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="fawn: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    redact_log_handlers()  # no camera password reaches a log line
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except FawnError as exc:
        sys.stderr.write(f"fawn: error: {redact_text(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("fawn: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
