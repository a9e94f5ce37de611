"""Drawing the embedded workload's frames: a construction site with workers, some with helmets and hi-vis vests.

Pure drawing: `render_frame(spec, i)` returns the image and its YOLO boxes, and depends only on
``np.random.default_rng([seed, i])``; demo.py writes the files. Everything is vectorised numpy / OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autotune.data import demo_site as site
from autotune.data.demo_texture import (
    HAIR,
    HELMET,
    PANTS,
    SHIRT,
    SKIN,
    VEST,
    Canvas,
    finish,
    jitter,
    pick,
    scale,
)
from autotune.errors import UserError

CLASSES: tuple[str, ...] = ("person", "helmet", "vest")

MAX_IMAGES = 1_000_000  # a benchmark workload, not a corpus: past this it is a typo
MAX_SIDE = 8192  # pixels; a 4K frame is 3840 wide
Box = tuple[int, float, float, float, float]  # YOLO label: class, cx, cy, w, h (normalised 0..1)


@dataclass(frozen=True)
class DemoSpec:
    """What to generate. Sizes in pixels; ``images`` counts train + val together."""

    images: int = 1000  # total images, train + val
    width: int = 1280
    height: int = 720
    val_fraction: float = 0.2
    seed: int = 0
    quality: int = 90  # JPEG quality, 1..100


# Named workloads: the frame size that decides what a frame costs to read.
#  default: 1280x720 photo-like JPEGs (~330 KB, ~10 ms to decode), a typical camera's training set.
#  loader-bound: 3840x2160 (~2.3 MB, ~60 ms to decode here): trained at a small imgsz, the loader is the bottleneck
#    even on a CPU, which is the case workers, cache and a pre-resized copy exist for.
VARIANTS: dict[str, tuple[int, int]] = {"default": (1280, 720), "loader-bound": (3840, 2160)}


def variant_size(name: str) -> tuple[int, int]:
    """(width, height) of a named demo variant, or a UserError naming the ones there are."""
    if name not in VARIANTS:
        raise UserError(f"unknown demo variant {name!r}: choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


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


def _person(
    cv: Canvas, rng: np.random.Generator, fx: float, fy: float, ph: float, pid: int, helmet: bool, vest: bool
) -> None:
    """A standing / walking worker whose feet are at (fx, fy) and who is ``ph`` pixels tall.

    Ids: ``pid`` body, ``pid + 1`` helmet, ``pid + 2`` vest. Proportions roughly follow an adult figure:
    head about 1/8 of the height, shoulders at 0.82, hips at 0.50 of it.
    """
    u = ph
    face = rng.uniform(0.55, 1.0)  # 1 = facing the camera, smaller = turned sideways (narrower silhouette)
    lean = rng.normal(0.0, 0.02) * u
    skin = jitter(rng, pick(rng, SKIN), 8)
    shirt = jitter(rng, pick(rng, SHIRT), 14)
    pants = jitter(rng, pick(rng, PANTS), 12)
    shoes = jitter(rng, (30, 30, 35), 8)
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

    vc = jitter(rng, pick(rng, VEST), 10) if vest else shirt
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
        stripe = jitter(rng, (215, 215, 210), 12)
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
        hc = jitter(rng, pick(rng, HELMET), 10)
        dome_y = hy - r * 0.2
        cv.ellipse((hx, dome_y), (r * 1.12, r * 1.05), hc, pid + 1, 180, 360)
        cv.ellipse((hx, dome_y), (r * 1.35, max(1.0, r * 0.18)), hc, pid + 1)  # brim
        hl = tuple(min(255.0, c * 1.25 + 30) for c in hc)  # specular highlight on the dome
        cv.ellipse((hx - r * 0.35, dome_y - r * 0.6), (r * 0.35, r * 0.18), hl, pid + 1)
    elif rng.random() < 0.8:
        cv.ellipse((hx, hy - r * 0.25), (r * 0.95, r * 0.8), jitter(rng, pick(rng, HAIR), 10), pid, 180, 360)


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

    img = site.background(rng, w, h, horizon, s)
    ids = np.zeros((h, w), np.int16)
    cv = Canvas(img, ids)
    site.scatter_rocks(img, rng, horizon, s)
    site.skyline(cv, rng, w, h, horizon, s)

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
        site.shadow(img, fx + np.sign(sun) * reach * 0.8, fy, reach, unit * 0.18, shadow)
        if kind != "person":
            site.prop(cv, rng, kind, fx, fy, unit)
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
            scale(img[y0:y1, x0:x1], np.where(figure, profile[None, :], np.float32(1.0)).astype(np.float32))
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

    return finish(rng, img, s), labels
