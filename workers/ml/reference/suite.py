"""The reference suite: 13 tasks from easy to hard for the reference model (`iimm synth --suite`).

Each task is an image folder (``OUT/TASK/{train,test}/CLASS/*.png`` + ``dataset.json``) whose
class names are the words the corpus captions with "a photo of a {class}." (the service's
default prompt), so zero-shot accuracy means what the group says:

- ``seen``: concepts the corpus draws and names (colours, gratings, textures, shapes, sizes,
  rendered digits);
- ``composition``: colour-shape pairs the corpus never draws, in words it knows;
- ``domain``: known words on images unlike the corpus (outlined shapes, noisy shapes,
  scikit-learn's 1,797 handwritten 8x8 digits);
- ``uncaptioned``: concepts never captioned (letters, positions, counts), near chance.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from workers.ml import synth
from workers.ml.reference.drawing import (
    CAPTIONED_SHAPES,
    COLOURS,
    GROUNDS,
    HELD_OUT_PAIRS,
    SIZES,
    draw_object,
)

TEMPLATE = "a photo of a {c}."


@dataclass(frozen=True)
class SuiteTask:
    """A task of the suite: its group (seen, composition, domain, uncaptioned) and drawing."""

    name: str
    group: str
    classes: tuple[str, ...]
    draw: synth.Draw | None  # None: real images (handwritten digits)


def _seen_colour(rng: np.random.Generator, shape: str) -> str:
    while True:
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        if (colour, shape) not in HELD_OUT_PAIRS:
            return colour


def _shapes(**style: object) -> synth.Draw:
    def draw(rng: np.random.Generator, label: int, size: int) -> Image.Image:
        shape = CAPTIONED_SHAPES[label]
        return draw_object(
            rng, size, shape=shape, colour=_seen_colour(rng, shape),
            scale=SIZES[int(rng.integers(2))], ground=GROUNDS[int(rng.integers(2))], **style,
        )  # fmt: skip

    return draw


def _sizes(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    shape = CAPTIONED_SHAPES[int(rng.integers(len(CAPTIONED_SHAPES)))]
    return draw_object(
        rng, size, shape=shape, colour=_seen_colour(rng, shape), scale=SIZES[label],
        ground=GROUNDS[int(rng.integers(2))],
    )  # fmt: skip


def _pairs(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    colour, shape = HELD_OUT_PAIRS[label]
    return draw_object(
        rng, size, shape=shape, colour=colour, scale=SIZES[int(rng.integers(2))],
        ground=GROUNDS[int(rng.integers(2))],
    )  # fmt: skip


_PLACES = {"left": (0.2, 0.5), "right": (0.8, 0.5), "top": (0.5, 0.2), "bottom": (0.5, 0.8)}


def _positions(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    shape = CAPTIONED_SHAPES[int(rng.integers(len(CAPTIONED_SHAPES)))]
    return draw_object(
        rng, size, shape=shape, colour=_seen_colour(rng, shape), scale="small",
        ground="dark", where=list(_PLACES.values())[label],
    )  # fmt: skip


def _counts(rng: np.random.Generator, label: int, size: int) -> Image.Image:
    shape = CAPTIONED_SHAPES[int(rng.integers(len(CAPTIONED_SHAPES)))]
    return draw_object(
        rng, size, shape=shape, colour=_seen_colour(rng, shape), ground="dark", count=label + 1
    )


def _synth(task: synth.Task, suffix: str = "", prefix: str = "") -> tuple[str, ...]:
    return tuple(f"{prefix}{c}{suffix}" for c in task.classes)


SUITE: tuple[SuiteTask, ...] = (
    SuiteTask("colours", "seen", _synth(synth.COLOURS, " patch"), synth.draw_colour),
    SuiteTask(
        "orientations", "seen", _synth(synth.ORIENTATIONS, " grating"), synth.draw_orientation
    ),
    SuiteTask("textures", "seen", _synth(synth.TEXTURES, " texture"), synth.draw_texture),
    SuiteTask("shapes", "seen", CAPTIONED_SHAPES, _shapes()),
    SuiteTask("sizes", "seen", tuple(f"{s} object" for s in SIZES), _sizes),
    SuiteTask("digits", "seen", _synth(synth.DIGITS, prefix="digit "), synth.draw_digit),
    SuiteTask("compositions", "composition", tuple(f"{c} {s}" for c, s in HELD_OUT_PAIRS), _pairs),
    SuiteTask("outlined-shapes", "domain", CAPTIONED_SHAPES, _shapes(outline=True)),
    SuiteTask("noisy-shapes", "domain", CAPTIONED_SHAPES, _shapes(noise=70.0)),
    SuiteTask("handwritten-digits", "domain", _synth(synth.DIGITS, prefix="digit "), None),
    SuiteTask("letters", "uncaptioned", synth.GLYPHS.classes, synth.draw_glyph),
    SuiteTask("positions", "uncaptioned", tuple(f"shape on the {p}" for p in _PLACES), _positions),
    SuiteTask(
        "counts", "uncaptioned", ("one shape", "two shapes", "three shapes", "four shapes"), _counts
    ),
)
TASKS = {t.name: t for t in SUITE}


def write_handwritten_digits(
    out: Path, *, seed: int, size: int, test_fraction: float, per_class: int | None = None
) -> Path:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, 16 grey levels) as a folder.

    Images are upscaled to `size` (bicubic) and turned white-on-dark RGB; a seeded stratified
    split puts `test_fraction` of each class in test; `per_class` keeps the first per class.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng([seed, 4242])
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(data.target == label))[:per_class]
        n_test = max(1, round(len(idx) * test_fraction))
        for i, j in enumerate(idx):
            split = "test" if i < n_test else "train"
            path = out / split / f"digit_{label}" / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(images[j]).resize((size, size), Image.Resampling.BICUBIC)
            img.convert("RGB").save(path, optimize=False)
    meta = {"task": "handwritten-digits", "source": "sklearn.datasets.load_digits", "seed": seed}
    (out / "dataset.json").write_text(json.dumps({**meta, "template": TEMPLATE}, indent=2))
    return out


def generate_suite(
    out: str | Path,
    *,
    per_class: int = 80,
    seed: int = 0,
    size: int = 32,
    test_fraction: float = 0.25,
    tasks: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write the suite's tasks (all, or `tasks`) under `out`; returns name -> folder.

    Handwritten digits use every one of scikit-learn's images (about 180 a class) unless
    `per_class` is smaller.
    """
    names = tasks or [t.name for t in SUITE]
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown reference-suite tasks {unknown}; choose from {list(TASKS)}")
    folders = {}
    for name in names:
        task, folder = TASKS[name], Path(out) / name
        if task.draw is None:
            write_handwritten_digits(
                folder, seed=seed, size=size, test_fraction=test_fraction, per_class=per_class
            )
        else:
            spec = synth.Task(task.classes, task.draw, TEMPLATE)
            synth.write_task(
                name, spec, folder, names=task.classes, key=1000 + list(TASKS).index(name),
                per_class=per_class, seed=seed, size=size, test_fraction=test_fraction,
            )  # fmt: skip
        _annotate(folder, task)
        folders[name] = folder
        if progress is not None:
            progress(name)
    return folders


def _annotate(folder: Path, task: SuiteTask) -> None:
    meta_path = folder / "dataset.json"
    meta = json.loads(meta_path.read_text())
    meta.update({"suite": "reference", "group": task.group, "class_names": list(task.classes)})
    meta_path.write_text(json.dumps(meta, indent=2))
