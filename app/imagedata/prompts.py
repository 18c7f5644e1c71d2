"""Zero-shot prompt templates per dataset.

The default for each benchmark is one template, the first of CLIP's per-dataset lists
(Radford et al., 2021) that the paper evaluates with (e.g. "a centered satellite photo of a
{c}."); ``ENSEMBLES`` adds a few more per dataset. With several templates, a class's text
embedding is the renormalised mean of the normalised template embeddings.
"""

from __future__ import annotations

from app.imagedata.errors import ImageDataError

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
