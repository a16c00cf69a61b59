"""Anonymization stage: ``Anonymizer.apply(image, dets) -> image``.

Every row of the detections that is not marked ``visible`` is anonymized:
pending, unknown and coasting faces alike (privacy fails closed).
"""

from __future__ import annotations

from streamer.stages.anonymize.base import Anonymizer, RegionAnonymizer, face_regions
from streamer.stages.anonymize.factory import create_anonymizer

__all__ = ["Anonymizer", "RegionAnonymizer", "create_anonymizer", "face_regions"]
