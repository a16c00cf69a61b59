#!/usr/bin/env python3
"""Benchmark transcode-only vs fawn vs deface on the same clip (same as ``fawn bench``).

Usage: scripts/bench.py [--seconds 10] [--every-n N] [--no-deface] [--json P] [--plot P.png]
       scripts/bench.py --stress [--frames 30] [--sizes 640x480,1280x720,1920x1080] [--presets default,cctv] [--repeat 3]
           (stress clips: fawn presets vs deface as whole processes, recall per segment; docs/benchmarks.md §8)
See ``fawn bench --help`` and docs/benchmarks.md.
"""

import sys

from streamer.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
