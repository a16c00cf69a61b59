"""The per-frame stages: detect, track (with scene-cut detection), identity, anonymize, plates."""
