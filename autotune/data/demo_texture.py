"""The demo frames' materials: photo-like noise and fractal textures, palettes, the canvas that paints colour and
ownership together (what is hidden behind what), and the sensor grain of the finished frame. Pure numpy / OpenCV."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import cv2
import numpy as np

Color = tuple[float, float, float]  # BGR, 0..255


# --------------------------------------------------------------------------------------------------
# Rendering: noise and texture helpers
# --------------------------------------------------------------------------------------------------


def gauss_lut() -> np.ndarray:
    """(1, 256) float32 table of standard normal quantiles at (k + 0.5) / 256, rescaled to unit variance.

    Indexing it with random bytes gives Gaussian-like sensor grain several times faster than standard_normal.
    """
    q = np.array([NormalDist().inv_cdf((k + 0.5) / 256.0) for k in range(256)])
    return (q / q.std()).astype(np.float32).reshape(1, 256)


_GAUSS_LUT = gauss_lut()


def upscale(small: np.ndarray, w: int, h: int) -> np.ndarray:
    """Smoothly upscale a small noise grid to (h, w).

    OpenCV's bicubic upscaling is slow for huge ratios, so very coarse grids go cubic to 1/8 size first and
    linear from there (the field is already smooth at that scale, so no creases show).
    """
    gh, gw = small.shape[:2]
    if gw * 16 < w and gh * 16 < h:
        small = cv2.resize(small, (max(gw, w // 8), max(gh, h // 8)), interpolation=cv2.INTER_CUBIC)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int = 1) -> np.ndarray:
    """Value noise in about [-1, 1] with features ``cell`` pixels apart: (h, w) or (h, w, channels)."""
    gh = max(2, round(h / max(cell, 1.0)) + 1)
    gw = max(2, round(w / max(cell, 1.0)) + 1)
    shape = (gh, gw) if channels == 1 else (gh, gw, channels)
    small = rng.random(shape, dtype=np.float32) * 2.0 - 1.0
    return upscale(small, w, h)


def fractal(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int, gain: float = 0.55) -> np.ndarray:
    """Multi-octave value noise: ``octaves`` layers, each half the feature size and ``gain`` the amplitude.

    Octaves with features of 16 px or more are summed at quarter resolution and upscaled once (linear is
    smooth enough at that ratio): most of the cost of an octave is its full-resolution resize.
    """
    lh, lw = max(2, -(-h // 4)), max(2, -(-w // 4))
    low: np.ndarray | None = None
    out: np.ndarray | None = None
    amp = 1.0
    for _ in range(octaves):
        coarse = cell >= 16.0
        layer = noise(rng, lh, lw, cell / 4.0) if coarse else noise(rng, h, w, cell)
        acc = low if coarse else out
        if acc is None:
            layer *= np.float32(amp)
            acc = layer
        else:
            cv2.scaleAdd(layer, amp, acc, dst=acc)
        if coarse:
            low = acc
        else:
            out = acc
        cell /= 2.0
        amp *= gain
    if low is not None:
        up = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        out = up if out is None else cv2.add(out, up)
    assert out is not None
    return out


def jitter(rng: np.random.Generator, color: Sequence[float], amount: float) -> Color:
    """Random colour near ``color`` (BGR), each channel moved by about ``amount`` (0..255 units)."""
    d = rng.normal(0.0, amount, 3)
    return (
        min(255.0, max(0.0, color[0] + d[0])),
        min(255.0, max(0.0, color[1] + d[1])),
        min(255.0, max(0.0, color[2] + d[2])),
    )


def pick(rng: np.random.Generator, palette: Sequence[Color]) -> Color:
    return palette[int(rng.integers(len(palette)))]


def scale(roi: np.ndarray, factor: np.ndarray) -> None:
    """Multiply a uint8 BGR image region in place by a float32 (h, w) factor map, saturating at 255."""
    cv2.multiply(roi, cv2.merge((factor, factor, factor)), dst=roi, dtype=cv2.CV_8U)


def texture_roi(
    img: np.ndarray, rng: np.random.Generator, x0: int, y0: int, x1: int, y1: int, cell: float, amount: float
) -> None:
    """Multiply the image rectangle by (1 + amount * noise) so flat fills look like weathered material."""
    h, w = img.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    tex = fractal(rng, y1 - y0, x1 - x0, cell, 2)
    tex *= np.float32(amount)
    tex += np.float32(1.0)
    scale(img[y0:y1, x0:x1], tex)


# Palettes, BGR.
SKY_TOPS: tuple[Color, ...] = (
    (200, 130, 60),
    (190, 150, 110),
    (170, 160, 150),
    (150, 110, 80),
    (210, 170, 120),
)
SKY_LOW: tuple[Color, ...] = (
    (235, 205, 175),
    (215, 210, 205),
    (190, 200, 215),
    (200, 215, 235),
    (230, 220, 210),
)
GROUND: tuple[Color, ...] = ((95, 115, 135), (120, 125, 130), (70, 95, 115), (140, 150, 160), (85, 110, 120))
CONCRETE: tuple[Color, ...] = (
    (150, 155, 160),
    (120, 125, 130),
    (175, 175, 170),
    (95, 100, 110),
    (60, 80, 130),
)
GLASS: tuple[Color, ...] = ((90, 70, 50), (60, 55, 50), (130, 110, 90), (40, 40, 45))
CONTAINER: tuple[Color, ...] = ((40, 50, 160), (130, 80, 30), (50, 110, 60), (30, 100, 200), (110, 110, 110))
SKIN: tuple[Color, ...] = ((170, 190, 230), (130, 160, 205), (95, 125, 175), (60, 85, 125), (45, 60, 95))
SHIRT: tuple[Color, ...] = (
    (150, 90, 40),
    (70, 70, 70),
    (220, 220, 220),
    (40, 40, 40),
    (50, 50, 170),
    (60, 120, 60),
    (130, 130, 120),
    (30, 90, 150),
    (160, 140, 110),
)
PANTS: tuple[Color, ...] = ((120, 70, 40), (50, 50, 55), (90, 130, 150), (35, 35, 35), (60, 90, 90))
HAIR: tuple[Color, ...] = ((20, 25, 30), (30, 45, 70), (60, 90, 130), (110, 110, 115))
HELMET: tuple[Color, ...] = ((20, 200, 250), (235, 235, 235), (20, 120, 250), (40, 40, 200), (180, 110, 30))
VEST: tuple[Color, ...] = ((10, 110, 250), (40, 240, 200), (30, 200, 230), (20, 80, 240))


# --------------------------------------------------------------------------------------------------
# Rendering: canvas that paints colour and ownership together
# --------------------------------------------------------------------------------------------------


class Canvas:
    """Paints on the uint8 BGR image and, in parallel, on an id map that says which labelled part owns each
    pixel (0 = background or unlabelled prop). Tracks each id's extent for its bounding box."""

    def __init__(self, img: np.ndarray, ids: np.ndarray) -> None:
        self.img = img
        self.ids = ids
        self.extent: dict[int, list[float]] = {}

    def _grow(self, pid: int, x0: float, y0: float, x1: float, y1: float) -> None:
        if pid <= 0:
            return
        e = self.extent.get(pid)
        if e is None:
            self.extent[pid] = [x0, y0, x1, y1]
        else:
            e[0], e[1], e[2], e[3] = min(e[0], x0), min(e[1], y0), max(e[2], x1), max(e[3], y1)

    def poly(self, pts: np.ndarray, color: Color, pid: int) -> None:
        p = np.round(pts).astype(np.int32).reshape(-1, 2)
        cv2.fillPoly(self.img, [p], color)
        cv2.fillPoly(self.ids, [p], pid)
        self._grow(pid, p[:, 0].min(), p[:, 1].min(), p[:, 0].max() + 1, p[:, 1].max() + 1)

    def line(self, a: Sequence[float], b: Sequence[float], color: Color, thick: float, pid: int) -> None:
        t = max(1, round(thick))
        pa, pb = (round(a[0]), round(a[1])), (round(b[0]), round(b[1]))
        cv2.line(self.img, pa, pb, color, t)
        cv2.line(self.ids, pa, pb, pid, t)
        r = t / 2.0
        self._grow(
            pid,
            min(pa[0], pb[0]) - r,
            min(pa[1], pb[1]) - r,
            max(pa[0], pb[0]) + r + 1,
            max(pa[1], pb[1]) + r + 1,
        )

    def ellipse(
        self,
        c: Sequence[float],
        axes: Sequence[float],
        color: Color,
        pid: int,
        start: int = 0,
        end: int = 360,
        angle: int = 0,
    ) -> None:
        ax = (max(1, round(axes[0])), max(1, round(axes[1])))
        pts = cv2.ellipse2Poly((round(c[0]), round(c[1])), ax, angle, start, end, 10)
        self.poly(pts, color, pid)


def finish(rng: np.random.Generator, img: np.ndarray, s: float) -> np.ndarray:
    """Camera look: material texture, uneven light with vignette, white balance, lens blur, sensor grain.

    Per-pixel brightness is computed on one float channel, then applied to the uint8 frame as a
    fixed-point (x/128) multiply that also carries the per-channel exposure / white-balance gains.
    """
    h, w = img.shape[:2]
    # Brightness map: fine material texture (cloth, concrete, paint), uneven light, vignette.
    lum = fractal(rng, h, w, 10 * s, 2, 0.6)
    lum *= np.float32(0.06)
    lum += np.float32(1.0)
    light = noise(rng, h, w, 0.35 * h)
    light *= np.float32(0.12)
    light += np.float32(1.0)
    lum *= light
    ry = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None] ** 2
    rx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :] ** 2
    vignette = rx + ry
    vignette *= -np.float32(rng.uniform(0.05, 0.15))
    vignette += np.float32(1.0)
    lum *= vignette
    gains = rng.uniform(0.75, 1.15) * (1.0 + rng.normal(0.0, 0.04, 3))  # exposure x white balance
    factor = cv2.merge([cv2.convertScaleAbs(lum, alpha=128.0 * g) for g in gains])  # 128 = x1.0
    out = cv2.multiply(img, factor, scale=1.0 / 128.0)
    out = cv2.GaussianBlur(out, (5, 5), rng.uniform(0.6, 1.1) * max(s, 0.5))  # lens softness
    # Sensor grain (0..255 units): per-pixel luminance noise shared by the 3 channels, plus weaker,
    # blotchier chroma noise at half resolution, as demosaicing produces.
    sigma = rng.uniform(4.0, 8.0)
    luma = cv2.LUT(np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w), lut16(sigma))
    hh, hw = (h + 1) // 2, (w + 1) // 2
    chroma = cv2.LUT(np.frombuffer(rng.bytes(hh * hw * 3), np.uint8).reshape(hh, hw * 3), lut16(sigma * 0.4))
    chroma = cv2.resize(chroma.reshape(hh, hw, 3), (w, h), interpolation=cv2.INTER_NEAREST)
    grain = cv2.add(cv2.merge((luma, luma, luma)), chroma)
    return cv2.add(out, grain, dtype=cv2.CV_8U)


def lut16(sigma: float) -> np.ndarray:
    """Byte -> Gaussian grain value table (int16, standard deviation ``sigma``)."""
    return np.round(_GAUSS_LUT * sigma).astype(np.int16)
