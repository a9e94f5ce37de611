"""The construction site behind the workers in the demo frames: sky, ground, tyre tracks, rocks, shadows, the
skyline with buildings, scaffolding and cranes, and the props (containers, cones, barriers)."""

from __future__ import annotations

import cv2
import numpy as np

from autotune.data.demo_texture import (
    CONCRETE,
    CONTAINER,
    GLASS,
    GROUND,
    SKY_LOW,
    SKY_TOPS,
    Canvas,
    fractal,
    jitter,
    noise,
    pick,
    scale,
    texture_roi,
)

# --------------------------------------------------------------------------------------------------
# Rendering: scene parts
# --------------------------------------------------------------------------------------------------


def background(rng: np.random.Generator, w: int, h: int, horizon: int, s: float) -> np.ndarray:
    """Sky gradient with clouds above ``horizon``, textured gravel/dirt ground below; uint8 BGR.

    Built one colour plane at a time in float32 and merged once as uint8: numpy broadcasting into
    (h, w, 3) is several times slower than single-channel maths, and uint8 halves the memory traffic of
    everything after.
    """
    top = np.array(jitter(rng, pick(rng, SKY_TOPS), 12), np.float32)
    low = np.array(jitter(rng, pick(rng, SKY_LOW), 10), np.float32)
    near = np.array(jitter(rng, pick(rng, GROUND), 12), np.float32)
    far = 0.55 * near + 0.45 * low  # aerial haze: the far ground fades into the sky colour
    gh = h - horizon
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None] ** 1.3
    sky_col = top * (1 - t) + low * t  # (horizon, 3)
    t = np.linspace(0.0, 1.0, gh, dtype=np.float32)[:, None] ** 0.6
    ground_col = far * (1 - t) + near * t  # (gh, 3)

    # Clouds: thresholded low-frequency noise blended toward a light grey.
    cover = fractal(rng, horizon, w, 260 * s, 4, 0.5)
    cover -= np.float32(rng.uniform(-0.2, 0.6))
    cover *= np.float32(1.5)
    np.clip(cover, 0.0, 0.9, out=cover)
    grey = rng.uniform(200, 250)
    cloud_col = jitter(rng, (grey, grey, grey * 0.98), 4)

    # Ground, as one brightness map: big patches (mud, dry dirt), pebbles that grow toward the camera,
    # 1-2 px grit (the costliest texture to encode, like real gravel) and darker tyre tracks.
    depth = np.linspace(0.3, 1.0, gh, dtype=np.float32)[:, None]  # 0.3 at the horizon, 1 at the bottom
    tex = fractal(rng, gh, w, 220 * s, 3, 0.5)
    tex *= np.float32(0.22)
    tex += np.float32(1.0)
    pebbles = noise(rng, gh, w, 9 * s)
    bumps = pebbles - np.float32(0.55)  # the tops of the pebble field become distinct light stones
    np.clip(bumps, 0.0, 1.0, out=bumps)
    bumps *= np.float32(0.35)
    pebbles *= np.float32(0.10)
    pebbles += bumps
    pebbles *= depth
    tex += pebbles
    cv2.scaleAdd(noise(rng, gh, w, 3.5 * s), 0.10, tex, dst=tex)
    grit = noise(rng, gh, w, 1.4)
    grit *= np.float32(0.16) - np.float32(0.06) * depth  # grit contrast fades a little with distance
    tex += grit
    if rng.random() < 0.6:
        tracks = np.zeros((gh, w), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            tyre_tracks(tracks, rng, w, gh)
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


def tyre_tracks(mask: np.ndarray, rng: np.random.Generator, w: int, gh: int) -> None:
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


def shadow(img: np.ndarray, fx: float, fy: float, length: float, width: float, strength: float) -> None:
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
    scale(img[ya:yb, xa:xb], np.float32(1.0) - m)


def scatter_rocks(img: np.ndarray, rng: np.random.Generator, horizon: int, s: float) -> None:
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


def skyline(cv: Canvas, rng: np.random.Generator, w: int, h: int, horizon: int, s: float) -> None:
    """Buildings (some bare concrete frames with scaffolding) and tower cranes along the horizon."""
    img = cv.img
    for _ in range(int(rng.integers(0, 6))):
        bw = int(w * rng.uniform(0.08, 0.35))
        bh = int(h * rng.uniform(0.08, 0.45))
        x0 = int(rng.uniform(-0.1, 1.0) * w)
        y1 = horizon + int(h * rng.uniform(0.0, 0.03))
        y0 = y1 - bh
        x1 = x0 + bw
        wall = jitter(rng, pick(rng, CONCRETE), 10)
        cv.poly(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), wall, 0)
        # Windows / open floors: a grid of darker openings, drawn with slicing masks (no Python per pixel).
        floor = max(4, int(rng.uniform(18, 40) * s))
        bay = max(4, int(rng.uniform(14, 50) * s))
        ya, yb, xa, xb = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
        if yb - ya > 2 and xb - xa > 2:
            ry = (np.arange(ya, yb) - y0) % floor < floor * rng.uniform(0.4, 0.7)
            rx = (np.arange(xa, xb) - x0) % bay < bay * rng.uniform(0.45, 0.8)
            mask = ry[:, None] & rx[None, :]
            glass = np.round(jitter(rng, pick(rng, GLASS), 15)).astype(np.uint8)
            img[ya:yb, xa:xb][mask] = glass
            texture_roi(img, rng, xa, ya, xb, yb, 30 * s, 0.12)
        if rng.random() < 0.45:  # scaffolding: steel tubes and braces in front of the facade
            tube = jitter(rng, (150, 150, 155) if rng.random() < 0.7 else (40, 120, 200), 15)
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
                    net = np.full_like(roi, np.round(jitter(rng, (60, 120, 50), 15)).astype(np.uint8))
                    cv2.addWeighted(roi, 0.55, net, 0.45, 0.0, dst=roi)
    for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):  # tower cranes
        steel = jitter(rng, (30, 170, 220) if rng.random() < 0.6 else (200, 200, 200), 15)
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


def prop(cv: Canvas, rng: np.random.Generator, kind: str, fx: float, fy: float, unit: float) -> None:
    """An unlabelled ground object standing at (fx, fy); ``unit`` = pixels per metre at that depth."""
    img = cv.img
    if kind == "container":
        ch = 2.6 * unit
        cw = ch * (2.35 if rng.random() < 0.7 else 0.95)  # 20 ft side view or end view
        x0, x1, y0, y1 = fx - cw / 2, fx + cw / 2, fy - ch, fy
        cv.poly(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), jitter(rng, pick(rng, CONTAINER), 12), 0)
        xa, xb, ya, yb = (
            int(max(0, x0)),
            int(min(img.shape[1], x1)),
            int(max(0, y0)),
            int(min(img.shape[0], y1)),
        )
        if xb - xa > 2 and yb - ya > 2:
            period = max(2.0, 0.25 * unit)  # corrugation: vertical ridges every ~25 cm
            ridge = 1.0 + 0.15 * np.sin((np.arange(xa, xb, dtype=np.float32) - x0) * (2 * np.pi / period))
            tex = fractal(rng, yb - ya, xb - xa, 0.8 * unit, 2)  # rust and dirt
            tex *= np.float32(0.15)
            tex += np.float32(1.0)
            tex *= ridge.astype(np.float32)[None, :]
            scale(img[ya:yb, xa:xb], tex)
    elif kind == "cone":
        ch, cw = 0.7 * unit, 0.35 * unit
        orange = jitter(rng, (20, 90, 240), 12)
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
        base = jitter(rng, (235, 235, 235), 10)
        cv.poly(np.array([[x0, fy], [x0 + bw, fy], [x0 + bw * 0.93, y0], [x0 + bw * 0.07, y0]]), base, 0)
        red = jitter(rng, (40, 40, 200), 12)
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
