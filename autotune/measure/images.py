"""One image shrunk to imgsz, as Ultralytics would load it: the pre-resized copy's building block, shared by
`autotune resize`, the cache bench and a probe of the resized source."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from autotune.files import atomic_write

# Outcomes of one image.
RESIZED = "resized"  # shrunk and re-encoded
AS_IS = "as_is"  # already at or below imgsz: copied byte for byte
KEPT = "kept"  # larger than imgsz, but a format OpenCV cannot write: copied at full size
CORRUPT = "corrupt"  # unreadable: skipped, with its label

# Extension -> (OpenCV encoder extension, whether --quality applies). PNG, BMP and TIFF are lossless.
ENCODERS: dict[str, tuple[str, bool]] = {
    "jpg": (".jpg", True),
    "jpeg": (".jpg", True),
    "mpo": (".jpg", True),  # a multi-picture JPEG: its first picture, which is what decoders read
    "png": (".png", False),
    "bmp": (".bmp", False),
    "tif": (".tif", False),
    "tiff": (".tif", False),
    "webp": (".webp", True),
}


def target_size(width: int, height: int, imgsz: int) -> tuple[int, int]:
    """(width, height) with the long side at imgsz, computed as Ultralytics' load_image does (ceil, capped at
    imgsz), so Ultralytics at the same imgsz finds a ratio of exactly 1. Images at or below imgsz keep their size."""
    if max(width, height) <= imgsz:
        return width, height
    r = imgsz / max(width, height)
    return min(math.ceil(width * r), imgsz), min(math.ceil(height * r), imgsz)


def shrink_encoded(data: bytes, ext: str, imgsz: int, quality: int) -> tuple[str, bytes | None]:
    """One image file's bytes -> (outcome, new file bytes or None when the original bytes are to be kept).

    Decoded as Ultralytics reads it (EXIF orientation applied, alpha dropped; grayscale stays grayscale, which
    Ultralytics reads back as three equal channels), shrunk with area averaging (no aliasing), re-encoded in the
    same format.
    """
    buf = np.frombuffer(data, np.uint8)
    try:
        im = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR) if buf.size else None
    except cv2.error:
        im = None
    if im is None:
        return CORRUPT, None
    h, w = im.shape[:2]
    size = target_size(w, h, imgsz)
    if size == (w, h):
        return AS_IS, None
    encoder = ENCODERS.get(ext.lower().lstrip("."))
    if encoder is None:
        return KEPT, None
    ext_cv, lossy = encoder
    params = []
    if lossy:
        params = [cv2.IMWRITE_JPEG_QUALITY if ext_cv == ".jpg" else cv2.IMWRITE_WEBP_QUALITY, quality]
    ok, out = cv2.imencode(ext_cv, cv2.resize(im, size, interpolation=cv2.INTER_AREA), params)
    return (RESIZED, out.tobytes()) if ok else (KEPT, None)


@dataclass(frozen=True)
class Job:
    """One image (and its label, if any) to write into the copy."""

    src: str
    dst: str
    label_src: str | None  # None: the image has no label file (a background image)
    label_dst: str | None
    imgsz: int
    quality: int


def write_one(job: Job) -> tuple[str, int]:
    """Write one image of the copy (label first, image last: a present image means its label is there too).
    Returns (outcome, bytes written for the image)."""
    try:
        data = Path(job.src).read_bytes()
    except OSError:
        return CORRUPT, 0
    outcome, new = shrink_encoded(data, Path(job.src).suffix, job.imgsz, job.quality)
    if outcome == CORRUPT:
        return outcome, 0
    dst = Path(job.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if job.label_src is not None and job.label_dst is not None:
        Path(job.label_dst).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(job.label_dst), Path(job.label_src).read_bytes())
    payload = data if new is None else new
    atomic_write(dst, payload)
    return outcome, len(payload)


def header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header (no decoding); None when it cannot be read.

    Once Ultralytics is imported, PIL's Image.open is its patch, which meets an unknown format by trying to
    install and import pi-heif: that ImportError means "unreadable" here too (YOLO_OFFLINE stops the install).
    """
    from PIL import Image

    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ImportError, Image.DecompressionBombError):
        return None


def image_sizes(paths: list[str] | tuple[str, ...]) -> list[tuple[int, int]]:
    """(width, height) of each readable image, from its header alone (no decoding)."""
    return [s for s in map(header_size, paths) if s is not None]
