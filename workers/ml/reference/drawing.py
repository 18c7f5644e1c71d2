"""Drawing the reference model's objects: coloured shapes of two sizes on two grounds (numpy/PIL).

The corpus (`workers.ml.reference.corpus`) and the reference suite
(`workers.ml.reference.suite`) draw with the same functions, so a suite task is "seen",
"a new composition" or "a new domain" by construction, not by accident of style.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from workers.ml.synth import _HUES, _SS, _finish, _shape_points

COLOURS = tuple(_HUES)  # red, orange, yellow, green, blue, purple
CAPTIONED_SHAPES = ("circle", "square", "triangle", "star")
UNCAPTIONED_SHAPES = ("pentagon", "diamond")  # drawn in the corpus, never named there
SIZES = ("small", "large")
GROUNDS = ("dark", "light")
# colour-shape pairs the corpus never draws: the suite's "new compositions" task
HELD_OUT_PAIRS = (
    ("red", "star"),
    ("green", "circle"),
    ("blue", "triangle"),
    ("yellow", "square"),
)
_RADIUS = {"small": (0.14, 0.2), "large": (0.3, 0.4)}  # fraction of the side


def hue_rgb(rng: np.random.Generator, colour: str) -> tuple[int, int, int]:
    """A saturated, bright RGB of the named hue, jittered by up to 8 degrees."""
    hue = ((_HUES[colour] + rng.uniform(-8, 8)) % 360) / 360
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0))
    return (int(r * 255), int(g * 255), int(b * 255))


def ground_rgb(rng: np.random.Generator, ground: str) -> tuple[int, int, int]:
    """A grey-ish background: dark (values 0-60) or light (190-250)."""
    lo, hi = (0, 60) if ground == "dark" else (190, 250)
    base = int(rng.integers(lo, hi))
    r, g, b = (int(np.clip(base + rng.integers(-10, 11), 0, 255)) for _ in range(3))
    return (r, g, b)


def _diamond(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """A square on its corner, narrowed to 70 % of its width."""
    return [(cx + (x - cx) * 0.7, y) for x, y in _shape_points("square", cx, cy, r, -np.pi / 4)]


def _paint(
    d: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    rot: float,
    fill: tuple[int, int, int],
    outline: bool,
) -> None:
    width = max(2, int(r * 0.25))
    kw = {"outline": fill, "width": width} if outline else {"fill": fill}
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), **kw)
    else:
        pts = _shape_points(shape, cx, cy, r, rot) if shape != "diamond" else _diamond(cx, cy, r)
        d.polygon(pts, **kw) if not outline else d.line([*pts, pts[0]], fill=fill, width=width)


def draw_object(
    rng: np.random.Generator,
    size: int,
    *,
    shape: str,
    colour: str,
    scale: str = "large",
    ground: str = "dark",
    outline: bool = False,
    noise: float = 0.0,
    where: tuple[float, float] | None = None,
    count: int = 1,
) -> Image.Image:
    """`count` shapes of one kind and colour at random places (or centred at `where`).

    `where` is the centre as fractions of the side; `noise` the standard deviation of
    per-pixel Gaussian noise in 8-bit levels; `outline` draws the contour only.
    """
    s = size * _SS
    img = Image.new("RGB", (s, s), ground_rgb(rng, ground))
    d = ImageDraw.Draw(img)
    fill = hue_rgb(rng, colour)
    lo, hi = _RADIUS[scale] if count == 1 else (0.1, 0.14)
    for _ in range(count):
        r = s * rng.uniform(lo, hi)
        if where is None:
            cx, cy = (rng.uniform(r, s - r) for _ in range(2))
        else:
            cx, cy = (np.clip(w * s + rng.uniform(-0.05, 0.05) * s, r, s - r) for w in where)
        rot = rng.uniform(-0.15, 0.15) - np.pi / 2
        _paint(d, shape, float(cx), float(cy), r, rot, fill, outline)
    out = _finish(img, size)
    if noise > 0:
        arr = np.asarray(out, dtype=np.float32) + rng.normal(0, noise, (size, size, 3))
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return out
