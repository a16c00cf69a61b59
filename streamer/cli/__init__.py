"""The ``fawn`` command: one module per command (main: run and the parser; batch, serve, eval, diffusion options)."""

from streamer.cli.main import main

__all__ = ["main"]
