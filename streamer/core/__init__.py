"""Core: the detections type, typed errors, configs, run statistics, credential redaction. Everything may import it; it imports nothing of fawn."""
