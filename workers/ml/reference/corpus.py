"""The reference model's captioned training corpus: generated images, three captions each.

What the text tower is taught (and what it is not) decides which suite tasks are learnable
zero-shot, so the vocabulary is explicit here:

- objects: a circle, square, triangle or star, small or large, in one of six colours, on a
  dark or light ground ("a small red circle.", "a photo of a red circle.", "a photo of a
  small object.");
  pentagons and diamonds are drawn but captioned only as "shape"; the colour-shape pairs
  in `HELD_OUT_PAIRS` are never drawn;
- colour patches, textures, gratings and rendered digits with their class words (the words
  of `workers.ml.synth`'s tasks);
- never captioned: letters (never drawn), positions, counts (one object per image).

Each kind has a caption "a photo of a {class}." in the words of the reference suite's class
names, the service's default prompt template.

Every image has its own generator seeded by (seed, index), so the corpus is the same for a
seed whatever the order of work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.ml import synth
from workers.ml.reference.drawing import (
    CAPTIONED_SHAPES,
    COLOURS,
    GROUNDS,
    HELD_OUT_PAIRS,
    SIZES,
    UNCAPTIONED_SHAPES,
    draw_object,
)

# share of the corpus per kind of image
MIX = {"object": 0.46, "colour": 0.08, "texture": 0.12, "grating": 0.09, "digit": 0.25}
CAPTIONS_PER_IMAGE = 3


@dataclass(frozen=True)
class Corpus:
    """`images` (n, side, side, 3) uint8, `captions` n lists of 3 strings, `kinds` (n,) str."""

    images: np.ndarray
    captions: list[list[str]]
    kinds: np.ndarray


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _three(rng: np.random.Generator, options: list[str]) -> list[str]:
    idx = rng.choice(len(options), CAPTIONS_PER_IMAGE, replace=False)
    return [options[int(i)] for i in idx]


def _object(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[str]]:
    while True:
        colour = _pick(rng, COLOURS)
        shape = _pick(rng, CAPTIONED_SHAPES + UNCAPTIONED_SHAPES)
        if (colour, shape) not in HELD_OUT_PAIRS:
            break
    scale, ground = _pick(rng, SIZES), _pick(rng, GROUNDS)
    img = draw_object(rng, size, shape=shape, colour=colour, scale=scale, ground=ground)
    word = shape if shape in CAPTIONED_SHAPES else "shape"
    options = [
        f"a {scale} {colour} {word}.",
        f"a {colour} {word} on a {ground} background.",
        f"a photo of a {word}.",
        f"a photo of a {colour} {word}.",
        f"a photo of a {scale} object.",
        f"a drawing of a {scale} {colour} {word}.",
    ]
    return np.asarray(img), _three(rng, options)


def _synth(
    rng: np.random.Generator, size: int, task: synth.Task, options: list[str]
) -> tuple[np.ndarray, list[str]]:
    label = int(rng.integers(len(task.classes)))
    c = task.classes[label]
    return np.asarray(task.draw(rng, label, size)), _three(rng, [o.format(c=c) for o in options])


_SYNTH = {
    "colour": (synth.COLOURS, ["a photo of a {c} patch.", "{c}.", "the colour {c}."]),
    "texture": (synth.TEXTURES, ["a photo of a {c} texture.", "{c}.", "a {c} pattern."]),
    "grating": (synth.ORIENTATIONS, ["a photo of a {c} grating.", "{c} stripes.", "{c}."]),
    "digit": (
        synth.DIGITS,
        ["a photo of a digit {c}.", 'the number: "{c}".', "{c}.", "the digit {c}."],
    ),
}


def draw_sample(seed: int, index: int, size: int = 32) -> tuple[str, np.ndarray, list[str]]:
    """The corpus's `index`-th sample for `seed`: (kind, image (size, size, 3), 3 captions)."""
    rng = np.random.default_rng([seed, 7919, index])
    kinds = list(MIX)
    kind = kinds[int(rng.choice(len(kinds), p=list(MIX.values())))]
    if kind == "object":
        img, caps = _object(rng, size)
    else:
        task, options = _SYNTH[kind]
        img, caps = _synth(rng, size, task, options)
    return kind, img, caps


def build_corpus(n: int, *, seed: int = 0, size: int = 32) -> Corpus:
    """Draw `n` captioned images (about 1-2 ms each on one core)."""
    if n < 1:
        raise ValueError("the corpus needs at least one image")
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions: list[list[str]] = []
    kinds = []
    for i in range(n):
        kind, images[i], caps = draw_sample(seed, i, size)
        captions.append(caps)
        kinds.append(kind)
    return Corpus(images, captions, np.asarray(kinds))
