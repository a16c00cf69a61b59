"""Pre- and post-processing for YOLO-family detectors exported to ONNX (no model code).

The contract a detector model must follow to be used by fawn's YOLO path
(``fawn run --plates MODEL.onnx``; see the README's "License plates" section):

- **Input**: one tensor ``[1, 3, H, W]``, float32 or float16, RGB, values in
  ``[0, 1]``, letterboxed: the frame is resized keeping its aspect ratio so it
  fits ``H x W`` and the rest is padded with grey 114 (centred). ``H``/``W`` come
  from the model when fixed; a dynamic input uses ``imgsz`` on the long side and
  pads the short side up to a multiple of ``stride`` (32).
- **Output** (the first output; a second one, the mask prototypes of a ``-seg``
  model ``[1, nm, h, w]``, is ignored), boxes in input pixels:

  ======  ==========================  =========================================
  layout  shape                       one row / column
  ======  ==========================  =========================================
  ``v8``  ``[1, 4+nc(+nm), N]``       cx, cy, w, h, nc class scores (no
                                      objectness; YOLOv8/v9/v11/v12), nm mask
                                      coefficients
  ``v5``  ``[1, N, 5+nc(+nm)]``       cx, cy, w, h, objectness, nc class
                                      scores (YOLOv5/v7); score = obj * class
  ``e2e`` ``[1, N, 6(+nm)]``          x1, y1, x2, y2, score, class (NMS inside
                                      the model: YOLOv10, YOLO26 end-to-end)
  ======  ==========================  =========================================

  ``auto`` picks by shape: more columns than rows-of-attributes means ``v8``
  (the attribute axis is the short one); otherwise 6(+nm) columns with at most
  ``E2E_MAX_ROWS`` rows is ``e2e``, else ``v5`` (set the layout explicitly for an
  end-to-end model with more rows, or a YOLOv5 one with 1 class and few rows).
  ``nm`` is the prototypes' channel count (0 without them); every remaining
  column is a class score.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from streamer.core.errors import ModelError

LAYOUTS = ("auto", "v8", "v5", "e2e")
PAD_VALUE = 114
E2E_MAX_ROWS = 1000  # end-to-end exports keep max_det rows (300 by default); raw heads have thousands

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed into the model input: ``input = frame * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: int
    pad_y: int
    width: int  # the model input's size
    height: int

    def to_frame(self, xyxy: FloatArray, frame_shape: tuple[int, ...]) -> FloatArray:
        """Boxes in input pixels -> frame pixels, clipped to the frame."""
        out = np.asarray(xyxy, np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        h, w = frame_shape[:2]
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
        return out


def input_size(frame_shape: tuple[int, ...], fixed: tuple[int, int] | None, imgsz: int, stride: int) -> tuple[int, int]:
    """(height, width) of the model input: the model's fixed size, or ``imgsz`` on the long side
    with the short side rounded up to a multiple of ``stride``."""
    if fixed is not None:
        return fixed
    h, w = frame_shape[:2]
    r = imgsz / max(h, w)
    return (_ceil_to(round(h * r), stride), _ceil_to(round(w * r), stride))


def _ceil_to(value: int, stride: int) -> int:
    return max(stride, -(-value // stride) * stride)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """``image`` resized keeping its aspect ratio into ``size`` (h, w), centred, padded with 114."""
    h, w = image.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (tw - nw) // 2, (th - nh) // 2
    out = np.full((th, tw, 3), PAD_VALUE, np.uint8)
    out[pad_y:pad_y + nh, pad_x:pad_x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, Letterbox(scale, pad_x, pad_y, tw, th)


def to_tensor(padded_bgr: np.ndarray, dtype: str) -> np.ndarray:
    """BGR uint8 HxWx3 -> [1, 3, H, W] RGB in [0, 1] of ``dtype`` (``tensor(float16)`` or float32)."""
    np_dtype = np.float16 if "float16" in dtype else np.float32
    chw = padded_bgr[:, :, ::-1].transpose(2, 0, 1)
    return (np.ascontiguousarray(chw, dtype=np.float32)[None] / 255.0).astype(np_dtype)


def detect_layout(shape: tuple[int, ...], nm: int = 0) -> str:
    """``v8``, ``v5`` or ``e2e`` for an output of ``shape`` (see the module docstring)."""
    if len(shape) != 3 or shape[0] != 1:
        raise ModelError(f"YOLO output must be [1, A, N] or [1, N, A], got {list(shape)}")
    _, a, b = shape
    if a < b:  # the attribute axis is the short one
        return "v8"
    if b == 6 + nm and a <= E2E_MAX_ROWS:
        return "e2e"
    return "v5"


def decode(
    output: np.ndarray, layout: str, threshold: float, nm: int = 0, nc: int | None = None
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Raw boxes (xyxy, input pixels), scores and class ids above ``threshold``, before NMS.

    ``nm``: trailing mask coefficients per row to ignore; ``nc``: class count (None:
    every column that is not a box, objectness or mask coefficient).
    """
    if layout == "auto":
        layout = detect_layout(tuple(output.shape), nm)
    if layout not in LAYOUTS:
        raise ModelError(f"unknown YOLO layout '{layout}' (valid: {', '.join(LAYOUTS)})")
    if output.ndim != 3:
        raise ModelError(f"YOLO output must be [1, A, N] or [1, N, A], got {list(output.shape)}")
    x: FloatArray = np.asarray(output, np.float32)[0]
    rows = x.T if layout == "v8" else x
    cols = int(rows.shape[-1])
    if layout == "e2e":
        return _decode_e2e(rows, threshold)
    first = 4 if layout == "v8" else 5
    n_cls = cols - first - nm if nc is None else nc
    if n_cls < 1 or first + n_cls + nm > cols:
        raise ModelError(f"YOLO {layout} output {list(output.shape)} cannot hold {nc} classes and {nm} mask coefficients")
    cls_scores = rows[:, first:first + n_cls]
    if layout == "v5":
        cls_scores = cls_scores * rows[:, 4:5]
    cls = cls_scores.argmax(axis=1)
    score = cls_scores[np.arange(len(rows)), cls]
    keep = score >= threshold
    return _cxcywh_to_xyxy(rows[keep, :4]), score[keep].astype(np.float32), cls[keep].astype(np.int64)


def _decode_e2e(rows: FloatArray, threshold: float) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    keep = rows[:, 4] >= threshold
    return rows[keep, :4].astype(np.float32), rows[keep, 4].astype(np.float32), rows[keep, 5].astype(np.int64)


def _cxcywh_to_xyxy(b: FloatArray) -> FloatArray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1).astype(np.float32)


def nms_per_class(xyxy: FloatArray, score: FloatArray, cls: npt.NDArray[np.int64], iou: float) -> npt.NDArray[np.int64]:
    """Indices kept by greedy NMS run separately per class (boxes of different classes never suppress)."""
    from streamer.core.boxes import nms

    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    offset = (cls.astype(np.float32) * (float(xyxy.max()) + 1.0))[:, None]
    return np.asarray(nms(xyxy + offset, score, iou), np.int64)
