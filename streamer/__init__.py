"""fawn: real-time face anonymization for live video (pipeline, stages, I/O, CLI)."""

__version__ = "0.1.0"
