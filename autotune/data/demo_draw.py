"""Drawing the embedded workload's frames: a construction site with workers, some with helmets and hi-vis vests.

Pure drawing: `render_frame(spec, i)` returns the image and its YOLO boxes, and depends only on
``np.random.default_rng([seed, i])``; demo.py writes the files. Everything is vectorised numpy / OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from autotune.errors import UserError

CLASSES: tuple[str, ...] = ("person", "helmet", "vest")

MAX_IMAGES = 1_000_000  # a benchmark workload, not a corpus: past this it is a typo
MAX_SIDE = 8192  # pixels; a 4K frame is 3840 wide
Box = tuple[int, float, float, float, float]  # YOLO label: class, cx, cy, w, h (normalised 0..1)
Color = tuple[float, float, float]  # BGR, 0..255


@dataclass(frozen=True)
class DemoSpec:
    """What to generate. Sizes in pixels; ``images`` counts train + val together."""

    images: int = 1000  # total images, train + val
    width: int = 1280
    height: int = 720
    val_fraction: float = 0.2
    seed: int = 0
    quality: int = 90  # JPEG quality, 1..100


def split_sizes(spec: DemoSpec) -> tuple[int, int]:
    """Validate ``spec`` and return (n_train, n_val); raise UserError on impossible values."""
    for name in ("images", "width", "height", "quality", "seed"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"Demo dataset {name} must be an integer, got {value!r}.")
    if spec.seed < 0:
        raise UserError(f"Demo dataset seed must be zero or positive, got {spec.seed}.")
    if not 2 <= spec.images <= MAX_IMAGES:
        raise UserError(f"Demo dataset images must be from 2 (one train, one val) to {MAX_IMAGES}, got {spec.images}.")
    if not (32 <= spec.width <= MAX_SIDE and 32 <= spec.height <= MAX_SIDE):
        raise UserError(
            f"Demo image size must be from 32x32 to {MAX_SIDE}x{MAX_SIDE} pixels, got {spec.width}x{spec.height}."
        )
    if not 1 <= spec.quality <= 100:
        raise UserError(f"Demo JPEG quality must be between 1 and 100, got {spec.quality}.")
    if not isinstance(spec.val_fraction, (int, float)) or not 0.0 < spec.val_fraction < 1.0:
        raise UserError(f"Demo val_fraction must be strictly between 0 and 1, got {spec.val_fraction!r}.")
    n_val = max(1, round(spec.images * spec.val_fraction))
    n_train = spec.images - n_val
    if n_train < 1:
        raise UserError(
            f"Demo val_fraction {spec.val_fraction} leaves no training images out of {spec.images}; "
            "lower val_fraction or raise images."
        )
    return n_train, n_val


# --------------------------------------------------------------------------------------------------
# Rendering: noise and texture helpers
# --------------------------------------------------------------------------------------------------


def _gauss_lut() -> np.ndarray:
    """(1, 256) float32 table of standard normal quantiles at (k + 0.5) / 256, rescaled to unit variance.

    Indexing it with random bytes gives Gaussian-like sensor grain several times faster than standard_normal.
    """
    q = np.array([NormalDist().inv_cdf((k + 0.5) / 256.0) for k in range(256)])
    return (q / q.std()).astype(np.float32).reshape(1, 256)


_GAUSS_LUT = _gauss_lut()


def _upscale(small: np.ndarray, w: int, h: int) -> np.ndarray:
    """Smoothly upscale a small noise grid to (h, w).

    OpenCV's bicubic upscaling is slow for huge ratios, so very coarse grids go cubic to 1/8 size first and
    linear from there (the field is already smooth at that scale, so no creases show).
    """
    gh, gw = small.shape[:2]
    if gw * 16 < w and gh * 16 < h:
        small = cv2.resize(small, (max(gw, w // 8), max(gh, h // 8)), interpolation=cv2.INTER_CUBIC)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int = 1) -> np.ndarray:
    """Value noise in about [-1, 1] with features ``cell`` pixels apart: (h, w) or (h, w, channels)."""
    gh = max(2, round(h / max(cell, 1.0)) + 1)
    gw = max(2, round(w / max(cell, 1.0)) + 1)
    shape = (gh, gw) if channels == 1 else (gh, gw, channels)
    small = rng.random(shape, dtype=np.float32) * 2.0 - 1.0
    return _upscale(small, w, h)


def _fractal(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int, gain: float = 0.55) -> np.ndarray:
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
        layer = _noise(rng, lh, lw, cell / 4.0) if coarse else _noise(rng, h, w, cell)
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


def _jitter(rng: np.random.Generator, color: Sequence[float], amount: float) -> Color:
    """Random colour near ``color`` (BGR), each channel moved by about ``amount`` (0..255 units)."""
    d = rng.normal(0.0, amount, 3)
    return (
        min(255.0, max(0.0, color[0] + d[0])),
        min(255.0, max(0.0, color[1] + d[1])),
        min(255.0, max(0.0, color[2] + d[2])),
    )


def _pick(rng: np.random.Generator, palette: Sequence[Color]) -> Color:
    return palette[int(rng.integers(len(palette)))]


def _scale(roi: np.ndarray, factor: np.ndarray) -> None:
    """Multiply a uint8 BGR image region in place by a float32 (h, w) factor map, saturating at 255."""
    cv2.multiply(roi, cv2.merge((factor, factor, factor)), dst=roi, dtype=cv2.CV_8U)


def _texture_roi(
    img: np.ndarray, rng: np.random.Generator, x0: int, y0: int, x1: int, y1: int, cell: float, amount: float
) -> None:
    """Multiply the image rectangle by (1 + amount * noise) so flat fills look like weathered material."""
    h, w = img.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    tex = _fractal(rng, y1 - y0, x1 - x0, cell, 2)
    tex *= np.float32(amount)
    tex += np.float32(1.0)
    _scale(img[y0:y1, x0:x1], tex)


# Palettes, BGR.
_SKY_TOPS: tuple[Color, ...] = (
    (200, 130, 60),
    (190, 150, 110),
    (170, 160, 150),
    (150, 110, 80),
    (210, 170, 120),
)
_SKY_LOW: tuple[Color, ...] = (
    (235, 205, 175),
    (215, 210, 205),
    (190, 200, 215),
    (200, 215, 235),
    (230, 220, 210),
)
_GROUND: tuple[Color, ...] = ((95, 115, 135), (120, 125, 130), (70, 95, 115), (140, 150, 160), (85, 110, 120))
_CONCRETE: tuple[Color, ...] = (
    (150, 155, 160),
    (120, 125, 130),
    (175, 175, 170),
    (95, 100, 110),
    (60, 80, 130),
)
_GLASS: tuple[Color, ...] = ((90, 70, 50), (60, 55, 50), (130, 110, 90), (40, 40, 45))
_CONTAINER: tuple[Color, ...] = ((40, 50, 160), (130, 80, 30), (50, 110, 60), (30, 100, 200), (110, 110, 110))
_SKIN: tuple[Color, ...] = ((170, 190, 230), (130, 160, 205), (95, 125, 175), (60, 85, 125), (45, 60, 95))
_SHIRT: tuple[Color, ...] = (
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
_PANTS: tuple[Color, ...] = ((120, 70, 40), (50, 50, 55), (90, 130, 150), (35, 35, 35), (60, 90, 90))
_HAIR: tuple[Color, ...] = ((20, 25, 30), (30, 45, 70), (60, 90, 130), (110, 110, 115))
_HELMET: tuple[Color, ...] = ((20, 200, 250), (235, 235, 235), (20, 120, 250), (40, 40, 200), (180, 110, 30))
_VEST: tuple[Color, ...] = ((10, 110, 250), (40, 240, 200), (30, 200, 230), (20, 80, 240))


# --------------------------------------------------------------------------------------------------
# Rendering: canvas that paints colour and ownership together
# --------------------------------------------------------------------------------------------------


class _Canvas:
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


# --------------------------------------------------------------------------------------------------
# Rendering: scene parts
# --------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, w: int, h: int, horizon: int, s: float) -> np.ndarray:
    """Sky gradient with clouds above ``horizon``, textured gravel/dirt ground below; uint8 BGR.

    Built one colour plane at a time in float32 and merged once as uint8: numpy broadcasting into
    (h, w, 3) is several times slower than single-channel maths, and uint8 halves the memory traffic of
    everything after.
    """
    top = np.array(_jitter(rng, _pick(rng, _SKY_TOPS), 12), np.float32)
    low = np.array(_jitter(rng, _pick(rng, _SKY_LOW), 10), np.float32)
    near = np.array(_jitter(rng, _pick(rng, _GROUND), 12), np.float32)
    far = 0.55 * near + 0.45 * low  # aerial haze: the far ground fades into the sky colour
    gh = h - horizon
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None] ** 1.3
    sky_col = top * (1 - t) + low * t  # (horizon, 3)
    t = np.linspace(0.0, 1.0, gh, dtype=np.float32)[:, None] ** 0.6
    ground_col = far * (1 - t) + near * t  # (gh, 3)

    # Clouds: thresholded low-frequency noise blended toward a light grey.
    cover = _fractal(rng, horizon, w, 260 * s, 4, 0.5)
    cover -= np.float32(rng.uniform(-0.2, 0.6))
    cover *= np.float32(1.5)
    np.clip(cover, 0.0, 0.9, out=cover)
    grey = rng.uniform(200, 250)
    cloud_col = _jitter(rng, (grey, grey, grey * 0.98), 4)

    # Ground, as one brightness map: big patches (mud, dry dirt), pebbles that grow toward the camera,
    # 1-2 px grit (the costliest texture to encode, like real gravel) and darker tyre tracks.
    depth = np.linspace(0.3, 1.0, gh, dtype=np.float32)[:, None]  # 0.3 at the horizon, 1 at the bottom
    tex = _fractal(rng, gh, w, 220 * s, 3, 0.5)
    tex *= np.float32(0.22)
    tex += np.float32(1.0)
    pebbles = _noise(rng, gh, w, 9 * s)
    bumps = pebbles - np.float32(0.55)  # the tops of the pebble field become distinct light stones
    np.clip(bumps, 0.0, 1.0, out=bumps)
    bumps *= np.float32(0.35)
    pebbles *= np.float32(0.10)
    pebbles += bumps
    pebbles *= depth
    tex += pebbles
    cv2.scaleAdd(_noise(rng, gh, w, 3.5 * s), 0.10, tex, dst=tex)
    grit = _noise(rng, gh, w, 1.4)
    grit *= np.float32(0.16) - np.float32(0.06) * depth  # grit contrast fades a little with distance
    tex += grit
    if rng.random() < 0.6:
        tracks = np.zeros((gh, w), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            _tyre_tracks(tracks, rng, w, gh)
        tracks *= np.float32(-0.22)
        tracks += np.float32(1.0)
        tex *= tracks

    plane = np.empty((h, w), np.float32)
    planes = []
    for c in range(3):
        sky = plane[:horizon]
        np.multiply(cover, np.float32(cloud_col[c]) - sky_col[:, c : c + 1], out=sky)
        sky += sky_col[:, c : c + 1]
        np.multiply(tex, ground_col[:, c : c + 1], out=plane[horizon:])
        planes.append(cv2.convertScaleAbs(plane))  # saturating float -> uint8 (values are >= 0)
    return cv2.merge(planes)


def _tyre_tracks(mask: np.ndarray, rng: np.random.Generator, w: int, gh: int) -> None:
    """Paint a pair of vehicle tracks (value 1) on the ground mask, converging toward the horizon (row 0)."""
    v = np.linspace(0.0, 1.0, 24)  # 0 at the bottom of the frame, 1 near the horizon
    y = (gh - 1) * (1.0 - v) ** 1.0
    scale = (1.0 - v) * 0.9 + 0.1  # perspective: widths shrink toward the horizon
    x0, x1 = rng.uniform(-0.3, 1.3) * w, rng.uniform(0.1, 0.9) * w
    bend = rng.normal(0.0, 0.15) * w
    xc = x0 + (x1 - x0) * v + bend * np.sin(np.pi * v)
    gauge, tread = rng.uniform(0.06, 0.1) * w, rng.uniform(0.012, 0.025) * w
    for side in (-1.0, 1.0):
        cx = xc + side * gauge * scale
        left = np.stack([cx - tread * scale, y], axis=1)
        right = np.stack([cx + tread * scale, y], axis=1)[::-1]
        cv2.fillPoly(mask, [np.round(np.concatenate([left, right])).astype(np.int32)], 1.0)


def _shadow(img: np.ndarray, fx: float, fy: float, length: float, width: float, strength: float) -> None:
    """Darken a soft ellipse on the ground around (fx, fy): the cast shadow of a standing object."""
    h, w = img.shape[:2]
    x0, x1 = int(fx - length - 2), int(fx + length + 3)
    y0, y1 = int(fy - width - 2), int(fy + width + 3)
    xa, xb, ya, yb = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if xb - xa < 2 or yb - ya < 2:
        return
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(
        m,
        (round(fx - x0), round(fy - y0)),
        (max(1, round(length)), max(1, round(width))),
        0,
        0,
        360,
        strength,
        -1,
    )
    m = cv2.GaussianBlur(m, (0, 0), max(0.7, width * 0.4))[ya - y0 : yb - y0, xa - x0 : xb - x0]
    _scale(img[ya:yb, xa:xb], np.float32(1.0) - m)


def _scatter_rocks(img: np.ndarray, rng: np.random.Generator, horizon: int, s: float) -> None:
    """Stones and debris on the ground, smaller toward the horizon (no labels, drawn straight on the image)."""
    h, w = img.shape[:2]
    n = int(rng.integers(20, 120))
    ys = horizon + (h - horizon) * rng.random(n) ** 0.7
    xs = rng.random(n) * w
    radii = (ys - horizon) / max(1, h - horizon) * rng.uniform(3, 14, n) * s + 1  # pixels
    flat = rng.uniform(0.4, 0.8, n)  # seen from above at an angle: ellipses
    angles = rng.integers(0, 180, n)
    shades = rng.uniform(50, 190, n)[:, None] * np.array([0.95, 1.0, 1.05]) + rng.normal(0, 6, (n, 3))
    colours = np.clip(shades, 0, 255).tolist()
    for i in range(n):
        axes = (max(1, round(radii[i])), max(1, round(radii[i] * flat[i])))
        cv2.ellipse(img, (round(xs[i]), round(ys[i])), axes, int(angles[i]), 0, 360, colours[i], -1)


def _skyline(cv: _Canvas, rng: np.random.Generator, w: int, h: int, horizon: int, s: float) -> None:
    """Buildings (some bare concrete frames with scaffolding) and tower cranes along the horizon."""
    img = cv.img
    for _ in range(int(rng.integers(0, 6))):
        bw = int(w * rng.uniform(0.08, 0.35))
        bh = int(h * rng.uniform(0.08, 0.45))
        x0 = int(rng.uniform(-0.1, 1.0) * w)
        y1 = horizon + int(h * rng.uniform(0.0, 0.03))
        y0 = y1 - bh
        x1 = x0 + bw
        wall = _jitter(rng, _pick(rng, _CONCRETE), 10)
        cv.poly(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), wall, 0)
        # Windows / open floors: a grid of darker openings, drawn with slicing masks (no Python per pixel).
        floor = max(4, int(rng.uniform(18, 40) * s))
        bay = max(4, int(rng.uniform(14, 50) * s))
        ya, yb, xa, xb = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
        if yb - ya > 2 and xb - xa > 2:
            ry = (np.arange(ya, yb) - y0) % floor < floor * rng.uniform(0.4, 0.7)
            rx = (np.arange(xa, xb) - x0) % bay < bay * rng.uniform(0.45, 0.8)
            mask = ry[:, None] & rx[None, :]
            glass = np.round(_jitter(rng, _pick(rng, _GLASS), 15)).astype(np.uint8)
            img[ya:yb, xa:xb][mask] = glass
            _texture_roi(img, rng, xa, ya, xb, yb, 30 * s, 0.12)
        if rng.random() < 0.45:  # scaffolding: steel tubes and braces in front of the facade
            tube = _jitter(rng, (150, 150, 155) if rng.random() < 0.7 else (40, 120, 200), 15)
            t = max(1.0, 2.5 * s)
            step_x = max(6, int(rng.uniform(35, 70) * s))
            step_y = max(6, int(rng.uniform(30, 50) * s))
            for x in range(x0, x1 + 1, step_x):
                cv.line((x, y0 - step_y // 2), (x, y1), tube, t, 0)
            for y in range(y1, y0 - step_y, -step_y):
                cv.line((x0, y), (x1, y), tube, t, 0)
                cv.line((x0, y), (x0 + step_x, y - step_y), tube, t * 0.8, 0)
            if rng.random() < 0.5:  # green safety netting, semi-transparent
                roi = img[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
                if roi.size:
                    net = np.full_like(roi, np.round(_jitter(rng, (60, 120, 50), 15)).astype(np.uint8))
                    cv2.addWeighted(roi, 0.55, net, 0.45, 0.0, dst=roi)
    for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):  # tower cranes
        steel = _jitter(rng, (30, 170, 220) if rng.random() < 0.6 else (200, 200, 200), 15)
        mx = rng.uniform(0.05, 0.95) * w
        top = horizon - h * rng.uniform(0.2, 0.45)
        half = max(1.5, 5 * s)
        t = max(1.0, 1.5 * s)
        cv.line((mx - half, horizon), (mx - half, top), steel, t, 0)
        cv.line((mx + half, horizon), (mx + half, top), steel, t, 0)
        ys = np.arange(horizon, top, -2 * half)
        for i, y in enumerate(ys[:-1]):  # lattice zigzag
            a, b = (mx - half, y), (mx + half, ys[i + 1])
            cv.line(a if i % 2 == 0 else (mx + half, y), b if i % 2 == 0 else (mx - half, ys[i + 1]), steel, t, 0)
        jib = w * rng.uniform(0.2, 0.5)
        side = 1 if rng.random() < 0.7 else -1
        cv.line((mx - side * jib * 0.3, top), (mx + side * jib, top), steel, 2 * t, 0)
        cv.line((mx, top - 6 * half), (mx + side * jib * 0.6, top), steel, t, 0)
        cv.line(
            (mx + side * jib * 0.6, top),
            (mx + side * jib * 0.6, top + h * rng.uniform(0.05, 0.2)),
            (40, 40, 40),
            t * 0.6,
            0,
        )


def _prop(cv: _Canvas, rng: np.random.Generator, kind: str, fx: float, fy: float, unit: float) -> None:
    """An unlabelled ground object standing at (fx, fy); ``unit`` = pixels per metre at that depth."""
    img = cv.img
    if kind == "container":
        ch = 2.6 * unit
        cw = ch * (2.35 if rng.random() < 0.7 else 0.95)  # 20 ft side view or end view
        x0, x1, y0, y1 = fx - cw / 2, fx + cw / 2, fy - ch, fy
        cv.poly(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), _jitter(rng, _pick(rng, _CONTAINER), 12), 0)
        xa, xb, ya, yb = (
            int(max(0, x0)),
            int(min(img.shape[1], x1)),
            int(max(0, y0)),
            int(min(img.shape[0], y1)),
        )
        if xb - xa > 2 and yb - ya > 2:
            period = max(2.0, 0.25 * unit)  # corrugation: vertical ridges every ~25 cm
            ridge = 1.0 + 0.15 * np.sin((np.arange(xa, xb, dtype=np.float32) - x0) * (2 * np.pi / period))
            tex = _fractal(rng, yb - ya, xb - xa, 0.8 * unit, 2)  # rust and dirt
            tex *= np.float32(0.15)
            tex += np.float32(1.0)
            tex *= ridge.astype(np.float32)[None, :]
            _scale(img[ya:yb, xa:xb], tex)
    elif kind == "cone":
        ch, cw = 0.7 * unit, 0.35 * unit
        orange = _jitter(rng, (20, 90, 240), 12)
        cv.poly(np.array([[fx - cw / 2, fy], [fx + cw / 2, fy], [fx, fy - ch]]), orange, 0)
        cv.line(
            (fx - cw * 0.28, fy - ch * 0.45),
            (fx + cw * 0.28, fy - ch * 0.45),
            (235, 235, 235),
            0.12 * unit,
            0,
        )
        cv.poly(
            np.array(
                [
                    [fx - cw * 0.7, fy],
                    [fx + cw * 0.7, fy],
                    [fx + cw * 0.6, fy - 0.05 * unit],
                    [fx - cw * 0.6, fy - 0.05 * unit],
                ]
            ),
            (30, 30, 30),
            0,
        )
    else:  # jersey barrier with red / white stripes
        bh, bw = 0.8 * unit, 2.0 * unit
        x0, y0 = fx - bw / 2, fy - bh
        base = _jitter(rng, (235, 235, 235), 10)
        cv.poly(np.array([[x0, fy], [x0 + bw, fy], [x0 + bw * 0.93, y0], [x0 + bw * 0.07, y0]]), base, 0)
        red = _jitter(rng, (40, 40, 200), 12)
        for k in range(0, 8, 2):
            xa, xb = x0 + bw * k / 8, x0 + bw * (k + 1) / 8
            cv.poly(
                np.array(
                    [
                        [xa, fy - bh * 0.1],
                        [xb, fy - bh * 0.1],
                        [xb + bw * 0.05, y0 + bh * 0.15],
                        [xa + bw * 0.05, y0 + bh * 0.15],
                    ]
                ),
                red,
                0,
            )


def _person(
    cv: _Canvas, rng: np.random.Generator, fx: float, fy: float, ph: float, pid: int, helmet: bool, vest: bool
) -> None:
    """A standing / walking worker whose feet are at (fx, fy) and who is ``ph`` pixels tall.

    Ids: ``pid`` body, ``pid + 1`` helmet, ``pid + 2`` vest. Proportions roughly follow an adult figure:
    head about 1/8 of the height, shoulders at 0.82, hips at 0.50 of it.
    """
    u = ph
    face = rng.uniform(0.55, 1.0)  # 1 = facing the camera, smaller = turned sideways (narrower silhouette)
    lean = rng.normal(0.0, 0.02) * u
    skin = _jitter(rng, _pick(rng, _SKIN), 8)
    shirt = _jitter(rng, _pick(rng, _SHIRT), 14)
    pants = _jitter(rng, _pick(rng, _PANTS), 12)
    shoes = _jitter(rng, (30, 30, 35), 8)
    r = 0.062 * u  # head radius
    hx, hy = fx + lean, fy - u + r * 1.05
    sy, hipy = fy - 0.82 * u, fy - 0.50 * u
    sw, hw = 0.12 * u * face, 0.085 * u * face
    limb = max(1.0, 0.07 * u * face)

    # Legs: walking stride or standing apart.
    stride = rng.uniform(-0.12, 0.12) * u
    knee_y = fy - 0.26 * u
    for side, dx in ((-1, -stride / 2), (1, stride / 2)):
        hip = (fx + lean * 0.5 + side * hw * 0.55, hipy)
        knee = (fx + side * hw * 0.5 + dx * 0.6, knee_y)
        foot = (fx + side * hw * 0.45 + dx, fy - limb * 0.4)
        cv.line(hip, knee, pants, limb * 1.1, pid)
        cv.line(knee, foot, pants, limb, pid)
        cv.ellipse((foot[0] + side * limb * 0.3, fy - limb * 0.3), (limb * 0.8, limb * 0.4), shoes, pid)

    torso = np.array(
        [
            [hx - sw, sy],
            [hx + sw, sy],
            [fx + lean * 0.5 + hw, hipy + 0.03 * u],
            [fx + lean * 0.5 - hw, hipy + 0.03 * u],
        ]
    )
    cv.poly(torso, shirt, pid)
    cv.line((hx, sy - 0.04 * u), (hx, sy + 0.01 * u), skin, r * 0.9, pid)  # neck

    vc = _jitter(rng, _pick(rng, _VEST), 10) if vest else shirt
    if vest:
        vy0, vy1 = sy + 0.01 * u, hipy - 0.01 * u
        k = 1.06
        poly = np.array(
            [
                [hx - sw * k, vy0],
                [hx - sw * 0.35, vy0],
                [hx, vy0 + 0.08 * u],
                [hx + sw * 0.35, vy0],
                [hx + sw * k, vy0],
                [fx + lean * 0.5 + hw * k, vy1],
                [fx + lean * 0.5 - hw * k, vy1],
            ]
        )
        cv.poly(poly, vc, pid + 2)
        stripe = _jitter(rng, (215, 215, 210), 12)
        st = max(1.0, 0.022 * u)
        for f in (0.55, 0.8):  # two horizontal reflective bands
            y = vy0 + (vy1 - vy0) * f
            half = sw * k + (hw * k - sw * k) * f
            cv.line((hx - half + st, y), (hx + half - st, y), stripe, st, pid + 2)
        if rng.random() < 0.5:  # braces over the shoulders
            for side in (-1, 1):
                cv.line(
                    (hx + side * sw * 0.6, vy0 + st),
                    (hx + side * hw * 0.6, vy0 + (vy1 - vy0) * 0.5),
                    stripe,
                    st,
                    pid + 2,
                )

    # Arms: shoulder -> elbow -> hand, long or short sleeves, random swing.
    sleeve_long = rng.random() < 0.5
    arm = max(1.0, 0.055 * u * (0.6 + 0.4 * face))
    for side in (-1, 1):
        sh = (hx + side * sw * 0.92, sy + arm * 0.5)
        swing = rng.uniform(-0.5, 0.9)  # radians away from the body
        elbow = (sh[0] + side * np.sin(swing * 0.5) * 0.16 * u, sh[1] + np.cos(swing * 0.5) * 0.16 * u)
        bend = swing + rng.uniform(0.0, 1.5)
        hand = (elbow[0] + side * np.sin(bend * 0.6) * 0.15 * u, elbow[1] + np.cos(bend) * 0.15 * u)
        cv.line(sh, elbow, vc if rng.random() < 0.2 else shirt, arm * 1.1, pid)
        cv.line(elbow, hand, shirt if sleeve_long else skin, arm, pid)
        cv.ellipse(hand, (arm * 0.6, arm * 0.6), skin, pid)

    cv.ellipse((hx, hy), (r * 0.9, r), skin, pid)  # head
    if helmet:
        hc = _jitter(rng, _pick(rng, _HELMET), 10)
        dome_y = hy - r * 0.2
        cv.ellipse((hx, dome_y), (r * 1.12, r * 1.05), hc, pid + 1, 180, 360)
        cv.ellipse((hx, dome_y), (r * 1.35, max(1.0, r * 0.18)), hc, pid + 1)  # brim
        hl = tuple(min(255.0, c * 1.25 + 30) for c in hc)  # specular highlight on the dome
        cv.ellipse((hx - r * 0.35, dome_y - r * 0.6), (r * 0.35, r * 0.18), hl, pid + 1)
    elif rng.random() < 0.8:
        cv.ellipse((hx, hy - r * 0.25), (r * 0.95, r * 0.8), _jitter(rng, _pick(rng, _HAIR), 10), pid, 180, 360)


def _people_count(rng: np.random.Generator) -> int:
    """Long tail: ~5% empty, ~10% crowds of 15-40, otherwise 1-6 with small counts most likely."""
    u = rng.random()
    if u < 0.05:
        return 0
    if u < 0.15:
        return int(rng.integers(15, 41))
    return int(rng.choice(np.arange(1, 7), p=[0.3, 0.24, 0.18, 0.13, 0.09, 0.06]))


def render_frame(spec: DemoSpec, index: int) -> tuple[np.ndarray, list[Box]]:
    """Draw frame ``index`` of ``spec``: a BGR uint8 image (height, width, 3) and its YOLO labels.

    Labels are (class, cx, cy, w, h) normalised to 0..1; person boxes cover the whole visible figure,
    helmet / vest boxes the helmet / vest. Parts hidden behind nearer objects are not labelled.
    """
    split_sizes(spec)
    rng = np.random.default_rng([spec.seed, index])
    w, h = spec.width, spec.height
    s = h / 720.0  # pixel sizes below are tuned for 720 p and scale with the frame
    horizon = int(h * rng.uniform(0.22, 0.5))
    # Pinhole camera: a person standing at image row y is k * (y - horizon) pixels tall, with
    # k = person height / camera height (camera 1.5 m at eye level .. 5 m on a pole).
    k = 1.75 / rng.uniform(1.5, 5.0)
    sun = rng.uniform(-1.0, 1.0)  # cast shadows fall this far sideways (x metres per metre of height)
    shadow = rng.uniform(0.15, 0.5)  # how dark they are: overcast .. hard sun

    img = _background(rng, w, h, horizon, s)
    ids = np.zeros((h, w), np.int16)
    cv = _Canvas(img, ids)
    _scatter_rocks(img, rng, horizon, s)
    _skyline(cv, rng, w, h, horizon, s)

    # Objects standing on the ground, painted far to near so nearer ones occlude.
    n_people = _people_count(rng)
    crowd = n_people >= 15
    centres = rng.uniform(0.1, 0.9, size=int(rng.integers(1, 4)))
    objects: list[tuple[float, float, str]] = []  # (feet row, x, kind)
    min_row = horizon + 8.0 * s / k  # farthest row where a person is still ~8 px (at 720 p) tall
    span = h * 1.3 - min_row  # rows below the frame bottom give close-ups with cut-off legs
    for _ in range(n_people):
        t = rng.random() ** (1.8 if crowd else 1.2)  # most people mid-distance, a few close
        x = (rng.choice(centres) + rng.normal(0, 0.12)) * w if crowd else rng.uniform(-0.05, 1.05) * w
        objects.append((min_row + span * t * (0.6 if crowd else 1.0), float(x), "person"))
    # Props: (kind, how many at most, farthest .. nearest placement as a fraction of the ground rows).
    # Containers stay in the back half so that they occlude some people without filling the frame.
    for kind, most, near_limit in (("container", 2, 0.35), ("cone", 6, 1.0), ("barrier", 3, 0.9)):
        for _ in range(int(rng.integers(0, most + 1))):
            row = min_row + (h - min_row) * near_limit * rng.random()
            objects.append((row, rng.uniform(-0.1, 1.1) * w, kind))
    objects.sort(key=lambda o: o[0])

    pid = 1
    people: list[tuple[int, bool, bool]] = []  # (first id, has helmet, has vest)
    full_area: dict[int, int] = {}  # id -> pixels painted before anything nearer was drawn
    for fy, fx, kind in objects:
        unit = k * (fy - horizon) / 1.75  # pixels per metre at this depth
        reach = unit * (0.3 + 0.6 * abs(sun))  # half length of the shadow ellipse, pixels
        _shadow(img, fx + np.sign(sun) * reach * 0.8, fy, reach, unit * 0.18, shadow)
        if kind != "person":
            _prop(cv, rng, kind, fx, fy, unit)
            continue
        helmet, vest = rng.random() < 0.7, rng.random() < 0.6
        _person(cv, rng, fx, fy, unit * rng.uniform(1.6, 1.9), pid, helmet, vest)
        people.append((pid, helmet, vest))
        boxes = [cv.extent[p] for p in range(pid, pid + 3) if p in cv.extent]
        x0, y0 = max(0, int(min(b[0] for b in boxes))), max(0, int(min(b[1] for b in boxes)))
        x1, y1 = min(w, int(max(b[2] for b in boxes)) + 1), min(h, int(max(b[3] for b in boxes)) + 1)
        if x1 > x0 and y1 > y0:
            roi_ids = ids[y0:y1, x0:x1]
            for part in range(pid, pid + 3):
                full_area[part] = int(np.count_nonzero(roi_ids == part))
            # Round-body shading: darker toward the silhouette edges, brighter on the sunny side.
            half = max(1.0, 0.16 * unit * 1.75)
            xs = (np.arange(x0, x1, dtype=np.float32) - np.float32(fx)) / np.float32(half)
            profile = np.clip(1.0 - 0.35 * xs * xs + 0.12 * sun * xs, 0.5, 1.15)
            figure = (roi_ids >= pid) & (roi_ids <= pid + 2)
            _scale(img[y0:y1, x0:x1], np.where(figure, profile[None, :], np.float32(1.0)).astype(np.float32))
        pid += 3

    visible = np.bincount(ids.ravel(), minlength=pid) if people else np.zeros(1, np.int64)
    labels: list[Box] = []
    for first, helmet, vest in people:
        parts = range(first, first + 3)
        shown = sum(int(visible[p]) for p in parts)
        total = sum(full_area.get(p, 0) for p in parts)
        if total == 0 or shown < 0.25 * total:
            continue  # off-frame or mostly hidden behind nearer objects
        boxes = [cv.extent[p] for p in parts if p in cv.extent]
        union = [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        ]
        candidates = [(0, union)]
        for cls, part, wanted in ((1, first + 1, helmet), (2, first + 2, vest)):
            if wanted and full_area.get(part, 0) > 0 and visible[part] >= 0.4 * full_area[part]:
                candidates.append((cls, cv.extent[part]))
        for cls, (x0, y0, x1, y1) in candidates:
            x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
            y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            labels.append((cls, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h))

    return _finish(rng, img, s), labels


def _finish(rng: np.random.Generator, img: np.ndarray, s: float) -> np.ndarray:
    """Camera look: material texture, uneven light with vignette, white balance, lens blur, sensor grain.

    Per-pixel brightness is computed on one float channel, then applied to the uint8 frame as a
    fixed-point (x/128) multiply that also carries the per-channel exposure / white-balance gains.
    """
    h, w = img.shape[:2]
    # Brightness map: fine material texture (cloth, concrete, paint), uneven light, vignette.
    lum = _fractal(rng, h, w, 10 * s, 2, 0.6)
    lum *= np.float32(0.06)
    lum += np.float32(1.0)
    light = _noise(rng, h, w, 0.35 * h)
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
    luma = cv2.LUT(np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w), _lut16(sigma))
    hh, hw = (h + 1) // 2, (w + 1) // 2
    chroma = cv2.LUT(np.frombuffer(rng.bytes(hh * hw * 3), np.uint8).reshape(hh, hw * 3), _lut16(sigma * 0.4))
    chroma = cv2.resize(chroma.reshape(hh, hw, 3), (w, h), interpolation=cv2.INTER_NEAREST)
    grain = cv2.add(cv2.merge((luma, luma, luma)), chroma)
    return cv2.add(out, grain, dtype=cv2.CV_8U)


def _lut16(sigma: float) -> np.ndarray:
    """Byte -> Gaussian grain value table (int16, standard deviation ``sigma``)."""
    return np.round(_GAUSS_LUT * sigma).astype(np.int16)
