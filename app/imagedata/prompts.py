"""Zero-shot prompt templates per dataset.

The default for each benchmark is one template, the first of CLIP's per-dataset lists
(Radford et al., 2021) that the paper evaluates with (e.g. "a centered satellite photo of a
{c}."); ``ENSEMBLES`` adds a few more per dataset. With several templates, a class's text
embedding is the renormalised mean of the normalised template embeddings.

Named ensembles (:data:`NAMED_ENSEMBLES`, selected with ``prompts: "clip_imagenet_80"``):
CLIP's 80 ImageNet templates and CLIP_benchmark's per-dataset templates (LAION-AI/
CLIP_benchmark, MIT licence; ``data/clip_benchmark_templates.json``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from app.imagedata.errors import ImageDataError

_DATA = Path(__file__).with_name("data")
#: Names a job's ``prompts`` may give instead of a list of templates.
NAMED_ENSEMBLES: dict[str, str] = {
    "paper": "the paper's single template per dataset (the default)",
    "clip_imagenet_80": "CLIP's 80 ImageNet templates",
    "clip_benchmark": "CLIP_benchmark's templates for the dataset (by its name)",
    "clip_benchmark:<key>": "CLIP_benchmark's templates of one of its datasets",
}
#: Dataset names (canonical) that CLIP_benchmark files under another key.
_CLIP_BENCHMARK_ALIASES = {
    "stanfordcars": "cars",
    "imagenet": "imagenet1k",
    "imagenetv2": "imagenet1k",
    "imagenetsketch": "imagenet1k",
    "imagenetr": "imagenet1k",
    "imageneta": "imagenet1k",
    "oxfordpets": "pets",
    "oxfordiiitpet": "pets",
    "flowers102": "flowers",
    "oxfordflowers102": "flowers",
    "fgvcaircraft": "fgvc_aircraft",
}

DEFAULT_TEMPLATE = "a photo of a {c}."

SINGLE_TEMPLATES: dict[str, str] = {
    "cars": "a photo of a {c}.",
    "stanfordcars": "a photo of a {c}.",
    "cifar100": "a photo of a {c}.",
    "dtd": "a photo of a {c} texture.",
    "eurosat": "a centered satellite photo of a {c}.",
    "gtsrb": 'a zoomed in photo of a "{c}" traffic sign.',
    "mnist": 'a photo of the number: "{c}".',
    "resisc45": "satellite imagery of {c}.",
    "sun397": "a photo of a {c}.",
    "svhn": 'a photo of the number: "{c}".',
    "stl10": "a photo of a {c}.",
}

ENSEMBLES: dict[str, list[str]] = {
    "cifar100": [
        "a photo of a {c}.",
        "a blurry photo of a {c}.",
        "a low resolution photo of a {c}.",
    ],
    "dtd": ["a photo of a {c} texture.", "a photo of a {c} pattern.", "a photo of a {c} object."],
    "eurosat": [
        "a centered satellite photo of a {c}.",
        "a centered satellite photo of the {c}.",
        "a centered satellite photo of {c}.",
    ],
    "resisc45": ["satellite imagery of {c}.", "aerial imagery of {c}.", "satellite photo of {c}."],
    "mnist": ['a photo of the number: "{c}".'],
    "svhn": ['a photo of the number: "{c}".'],
}


def canonical_name(name: str | None) -> str | None:
    """Lower-case a dataset name and drop separators: "NWPU-RESISC45" -> "resisc45"."""
    if not name:
        return None
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return "resisc45" if "resisc45" in key else key


def default_templates(dataset: str | None, *, ensemble: bool = False) -> list[str]:
    """The dataset's templates: its single one by default, its ensemble when asked."""
    key = canonical_name(dataset)
    if ensemble and key in ENSEMBLES:
        return list(ENSEMBLES[key])
    return [SINGLE_TEMPLATES.get(key or "", DEFAULT_TEMPLATE)]


def render_prompts(templates: list[str], class_names: list[str]) -> list[list[str]]:
    """Prompts per class: ``templates`` formatted with each class name (``{c}`` or ``{}``)."""
    if not templates:
        raise ImageDataError("at least one prompt template is needed")
    for t in templates:
        if "{c}" not in t and "{}" not in t:
            raise ImageDataError(f"prompt template has no '{{c}}' placeholder: {t!r}")
    return [
        [t.replace("{}", "{c}").replace("{c}", name) for t in templates] for name in class_names
    ]


@cache
def clip_benchmark_templates() -> dict[str, list[str]]:
    """CLIP_benchmark's English zero-shot templates per dataset key (``{c}`` placeholders)."""
    doc = json.loads((_DATA / "clip_benchmark_templates.json").read_text(encoding="utf-8"))
    return {k: list(v) for k, v in doc["templates"].items()}


def _clip_benchmark_key(dataset: str | None) -> str:
    table = clip_benchmark_templates()
    key = canonical_name(dataset) or ""
    by_canonical = {canonical_name(k): k for k in table}
    found = (table.get(key) and key) or by_canonical.get(key) or _CLIP_BENCHMARK_ALIASES.get(key)
    if not found:
        raise ImageDataError(
            f"CLIP_benchmark has no templates for dataset {dataset!r}; name one of its "
            f"datasets with prompts 'clip_benchmark:<key>', keys: {', '.join(sorted(table))}"
        )
    return found


def resolve_templates(prompts: str | Sequence[str] | None, dataset: str | None) -> list[str]:
    """The templates a job's ``prompts`` stands for: a list as given, None or ``"paper"`` for
    the dataset's default, or a name of :data:`NAMED_ENSEMBLES`; ImageDataError otherwise."""
    if prompts is None or prompts == "paper":
        return default_templates(dataset)
    if not isinstance(prompts, str):
        return list(prompts)
    if prompts == "clip_imagenet_80":
        return clip_benchmark_templates()["imagenet1k"]
    if prompts == "clip_benchmark":
        return clip_benchmark_templates()[_clip_benchmark_key(dataset)]
    if prompts.startswith("clip_benchmark:"):
        key = prompts.split(":", 1)[1]
        table = clip_benchmark_templates()
        if key not in table:
            raise ImageDataError(
                f"CLIP_benchmark has no dataset {key!r}; keys: {', '.join(sorted(table))}"
            )
        return table[key]
    raise ImageDataError(
        f"unknown prompt ensemble {prompts!r}; give a list of templates with {{c}} or one of "
        + ", ".join(f"{k!r} ({v})" for k, v in NAMED_ENSEMBLES.items())
    )


def check_prompts(prompts: str | Sequence[str] | None) -> None:
    """ImageDataError unless ``prompts`` is None, templates with ``{c}``, or a known name
    (dataset-dependent names are checked when the dataset is known)."""
    if isinstance(prompts, str):
        if prompts in ("paper", "clip_imagenet_80", "clip_benchmark"):
            return
        resolve_templates(prompts, None)
    elif prompts is not None:
        render_prompts(list(prompts), ["x"])


def prompts_hash(prompts: list[str] | str | None) -> str:
    """Content key of a prompt list or ensemble name (`default` when none is given)."""
    if not prompts:
        return "default"
    return hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:32]
