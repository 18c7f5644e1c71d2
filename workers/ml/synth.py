"""Small synthetic image-classification tasks written as image folders (torch-free).

Each task is ``OUT/{train,test}/CLASS/NNNNN.png`` plus ``dataset.json`` (task, class names,
prompt template, seed). Every image is drawn from its own generator seeded by (seed, task,
class, index), so the files are byte-identical for a given seed whatever the order of work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Draw = Callable[[np.random.Generator, int, int], Image.Image]
_SS = 2  # supersampling factor, so small shapes are anti-aliased


@dataclass(frozen=True)
class Task:
    """A synthetic task: its class names, how to draw one image of a class, its template."""

    classes: tuple[str, ...]
    draw: Draw
    template: str


def _colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(lo, hi, 3))
    return (r, g, b)


def _canvas(rng: np.random.Generator, size: int, dark: bool = True) -> Image.Image:
    return Image.new("RGB", (size * _SS, size * _SS), _colour(rng, 0, 90) if dark else (0, 0, 0))


def _finish(img: Image.Image, size: int) -> Image.Image:
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _shape_points(
    kind: str, cx: float, cy: float, r: float, rot: float
) -> list[tuple[float, float]]:
    sides = {"triangle": 3, "square": 4, "diamond": 4, "pentagon": 5, "star": 10}[kind]
    offset = rot + (np.pi / 4 if kind == "square" else 0.0)
    pts = []
    for i in range(sides):
        radius = r * (0.45 if kind == "star" and i % 2 else 1.0)
        a = offset + 2 * np.pi * i / sides
        pts.append((cx + radius * np.cos(a), cy + radius * np.sin(a)))
    return pts


def draw_shape(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """One filled shape (circle, square, triangle, star, pentagon, diamond) on a dark ground."""
    kind = SHAPES.classes[label]
    img = _canvas(rng, size)
    s = size * _SS
    r = s * rng.uniform(0.22, 0.38)
    cx, cy = (rng.uniform(r, s - r) for _ in range(2))
    d = ImageDraw.Draw(img)
    fill = _colour(rng, 120)
    if kind == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        rot = rng.uniform(-0.15, 0.15) - np.pi / 2
        d.polygon(_shape_points(kind, cx, cy, r, rot), fill=fill)
    return _finish(img, size)


_HUES = {"red": 0, "orange": 30, "yellow": 55, "green": 120, "blue": 225, "purple": 280}


def draw_colour(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """A noisy patch of one hue (red, orange, yellow, green, blue, purple)."""
    hue = (_HUES[COLOURS.classes[label]] + rng.uniform(-8, 8)) % 360
    hsv = np.empty((size, size, 3))
    hsv[..., 0] = hue / 360 * 255
    hsv[..., 1] = np.clip(rng.normal(210, 25, (size, size)), 120, 255)
    hsv[..., 2] = np.clip(rng.normal(200, 30, (size, size)), 100, 255)
    return Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")


def draw_texture(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """A two-colour texture: stripes, checkerboard, dots, grid, noise or waves."""
    kind = TEXTURES.classes[label]
    y, x = np.mgrid[0:size, 0:size].astype(float)
    period = rng.uniform(size / 8, size / 4)
    x, y = x + rng.uniform(0, period), y + rng.uniform(0, period)
    if kind == "stripes":
        mask = (x // (period / 2)) % 2 == 0
    elif kind == "checkerboard":
        mask = ((x // (period / 2)) + (y // (period / 2))) % 2 == 0
    elif kind == "dots":
        mask = ((x % period - period / 2) ** 2 + (y % period - period / 2) ** 2) < (period / 4) ** 2
    elif kind == "grid":
        mask = (x % period < period / 5) | (y % period < period / 5)
    elif kind == "waves":
        mask = np.sin(x / period * 2 * np.pi + 3 * np.sin(y / period * np.pi)) > 0
    else:
        mask = rng.random((size, size)) > 0.5
    a, b = np.array(_colour(rng, 150)), np.array(_colour(rng, 0, 100))
    return Image.fromarray(np.where(mask[..., None], a, b).astype(np.uint8))


def draw_orientation(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """A sinusoidal grating at 0, 45, 90 or 135 degrees (jittered by up to 8 degrees)."""
    angle = np.deg2rad({0: 0, 1: 45, 2: 90, 3: 135}[label] + rng.uniform(-8, 8))
    y, x = np.mgrid[0:size, 0:size].astype(float)
    period = rng.uniform(size / 6, size / 3)
    wave = np.sin((x * np.sin(angle) + y * np.cos(angle)) / period * 2 * np.pi + rng.uniform(0, 6))
    a, b = np.array(_colour(rng, 150)), np.array(_colour(rng, 0, 100))
    t = (wave[..., None] + 1) / 2
    return Image.fromarray((a * t + b * (1 - t)).astype(np.uint8))


def _draw_text(rng: np.random.Generator, text: str, size: int) -> Image.Image:
    img = _canvas(rng, size)
    s = size * _SS
    font = ImageFont.load_default(size=float(s * rng.uniform(0.55, 0.75)))
    d = ImageDraw.Draw(img)
    left, top, right, bottom = d.textbbox((0, 0), text, font=font)
    w, h = right - left, bottom - top
    x = rng.uniform(0, max(s - w, 1)) - left
    y = rng.uniform(0, max(s - h, 1)) - top
    d.text((x, y), text, font=font, fill=_colour(rng, 140))
    return _finish(img, size)


def draw_digit(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """A digit 0-9 in a random colour, size and position."""
    return _draw_text(rng, DIGITS.classes[label], size)


def draw_glyph(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    """A capital letter A-H in a random colour, size and position."""
    return _draw_text(rng, GLYPHS.classes[label][-1], size)


SHAPES = Task(
    ("circle", "square", "triangle", "star", "pentagon", "diamond"),
    draw_shape,
    "a drawing of a {c}.",
)
COLOURS = Task(tuple(_HUES), draw_colour, "a photo of the colour {c}.")
TEXTURES = Task(
    ("stripes", "checkerboard", "dots", "grid", "waves", "noise"),
    draw_texture,
    "a photo of a {c} texture.",
)
DIGITS = Task(tuple("0123456789"), draw_digit, 'a photo of the number: "{c}".')
ORIENTATIONS = Task(
    ("horizontal", "diagonal", "vertical", "antidiagonal"),
    draw_orientation,
    "a photo of {c} stripes.",
)
GLYPHS = Task(tuple(f"letter {c}" for c in "ABCDEFGH"), draw_glyph, "a photo of the {c}.")
TASKS: dict[str, Task] = {
    "shapes": SHAPES,
    "colours": COLOURS,
    "textures": TEXTURES,
    "digits": DIGITS,
    "orientations": ORIENTATIONS,
    "glyphs": GLYPHS,
}


def generate_task(
    task: str,
    out: str | Path,
    *,
    per_class: int = 40,
    seed: int = 0,
    size: int = 32,
    test_fraction: float = 0.25,
    classes: int | None = None,
) -> Path:
    """Write `task` as an image folder with train/test splits; returns the folder.

    `per_class` images per class are drawn; `test_fraction` of them (at least one) go to test.
    `classes` keeps only the first classes of the task.
    """
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; choose from {sorted(TASKS)}")
    spec = TASKS[task]
    names = spec.classes[: classes or len(spec.classes)]
    return write_task(
        task, spec, out, names=names, key=sorted(TASKS).index(task),
        per_class=per_class, seed=seed, size=size, test_fraction=test_fraction,
    )  # fmt: skip


def write_task(
    task: str,
    spec: Task,
    out: str | Path,
    *,
    names: tuple[str, ...],
    key: int,
    per_class: int,
    seed: int,
    size: int,
    test_fraction: float,
) -> Path:
    """Draw `spec`'s classes `names` into OUT/{train,test}/CLASS/NNNNN.png plus dataset.json.

    Image i of class c is drawn from the generator seeded by (seed, key, c, i).
    """
    if per_class < 2:
        raise ValueError("per_class must be at least 2 (one train and one test image)")
    out = Path(out)
    n_test = max(1, round(per_class * test_fraction))
    for label, name in enumerate(names):
        for i in range(per_class):
            split = "test" if i < n_test else "train"
            rng = np.random.default_rng([seed, key, label, i])
            path = out / split / name.replace(" ", "_") / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            spec.draw(rng, label, size).save(path, optimize=False)
    meta = {
        "task": task,
        "class_names": list(names),
        "template": spec.template,
        "seed": seed,
        "per_class": per_class,
        "size": size,
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out
