"""What counts as a video file, an image file and a live RTSP address: one definition for every module."""

from __future__ import annotations

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
RTSP_SCHEMES = ("rtsp://", "rtsps://")
