"""Loading caller embeddings safely and computing their measures."""

from __future__ import annotations

import io

import numpy as np

from app.errors import InvalidError

KEYS = ("images", "texts", "labels")


def check_variant(value: object) -> str:
    """The `variant` form field (default "definition"); a 422 naming the allowed values."""
    from app.measure_requests.schemas import VARIANT_NAMES

    if value is None or value == "":
        return "definition"
    if value not in VARIANT_NAMES:
        raise InvalidError(f"variant must be one of {', '.join(VARIANT_NAMES)}; got {value!r}")
    return str(value)


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    """The three arrays of an `.npz` upload (`allow_pickle=False`: no code in data)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise InvalidError(
                    f"npz is missing arrays {missing}; it needs images, texts, labels"
                )
            return {k: np.asarray(npz[k]) for k in KEYS}
    except InvalidError:
        raise
    except Exception as exc:
        raise InvalidError(f"not a readable .npz file without pickles: {exc}") from None


def check_arrays(arrays: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """Shapes and dtypes checked; returns (n, k, d)."""
    images, texts, labels = (arrays[k] for k in KEYS)
    for name in ("images", "texts"):
        arr = arrays[name]
        if arr.ndim != 2 or arr.dtype.kind not in "fiu":
            raise InvalidError(f"{name} must be a 2-D numeric array; got {arr.dtype} {arr.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InvalidError(f"labels must be a 1-D integer array; got {labels.dtype} {labels.shape}")
    if images.shape[1] != texts.shape[1]:
        raise InvalidError(f"images have dim {images.shape[1]} but texts have dim {texts.shape[1]}")
    if len(labels) != len(images):
        raise InvalidError(f"{len(labels)} labels for {len(images)} images")
    return int(images.shape[0]), int(texts.shape[0]), int(images.shape[1])


def compute(
    arrays: dict[str, np.ndarray], names: list[str] | None, variant: str = "definition"
) -> tuple[dict[str, float | None], dict[str, str]]:
    """The measures and, for each undefined one (None), the reason; invalid input is a 422.

    An undefined measure (GBC with one sample per class, a baseline with one class present)
    never fails the others: see :func:`app.measures.measure_report`. ``variant`` says how
    the transferability baselines are computed (``app.measures.registry.VARIANTS``).
    """
    from app.measures import measure_report

    try:
        report = measure_report(
            arrays["images"],
            arrays["texts"],
            arrays["labels"].astype(np.int64),
            names=names,
            variant=variant,
        )
    except ValueError as exc:
        raise InvalidError(str(exc)) from None
    return report.values, report.reasons
