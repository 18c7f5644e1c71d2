"""`iimm measures`: every measure of a set of embeddings stored as .npy files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from iimm_cli._common import CliError, print_json, print_table


def register(sub: Any) -> None:
    """Add the `measures` subcommand."""
    p = sub.add_parser(
        "measures",
        help="compute IIMM and the other measures of stored embeddings",
        description=(
            "Compute the measures of image embeddings X (n x d), class text embeddings "
            "T (k x d) and integer labels y (n). The IIMM family and the cluster scores "
            "L2-normalise every row first; the transferability baselines receive the image "
            "features as given, so their values depend on the features' scale."
        ),
    )
    p.add_argument("--images", required=True, type=Path, help="image embeddings, .npy (n x d)")
    p.add_argument("--texts", required=True, type=Path, help="class text embeddings, .npy (k x d)")
    p.add_argument("--labels", required=True, type=Path, help="integer labels, .npy (n)")
    p.add_argument(
        "--measures",
        default="fast",
        help="comma-separated measure names, 'fast' (the O(n*d) family, default) or 'all'",
    )
    p.add_argument(
        "--variant",
        default="definition",
        choices=("definition", "iimm_reference", "authors", "authors_icml"),
        help=(
            "how the transferability baselines are computed: as their papers define them "
            "(default), as the IIMM paper's code did, as their authors' released code does, "
            "or (LogME only) as its authors' ICML code did; a measure without the variant is "
            "null with the reason"
        ),
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"measures": {name: value or null}, "reasons": {name: why it is null}}',
    )
    p.set_defaults(handler=run)


def load_array(path: Path, what: str) -> np.ndarray:
    """Memory-map a .npy file, refusing pickles; CliError with the reason on failure."""
    if not path.is_file():
        raise CliError(f"{what} file {path} does not exist")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise CliError(f"{what} file {path} is not a plain .npy array: {exc}") from exc
    except OSError as exc:
        raise CliError(f"cannot read {what} file {path}: {exc}") from exc


def parse_names(spec: str) -> tuple[str, ...] | None:
    """Turn the --measures option into a tuple of names (None means the fast family)."""
    from app.measures import ALL_MEASURES, FAST_MEASURES, check_names

    spec = spec.strip()
    if spec in ("", "fast"):
        return tuple(FAST_MEASURES)
    if spec == "all":
        return tuple(ALL_MEASURES)
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    try:
        check_names(names)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return names


def run(args: argparse.Namespace) -> int:
    """Load the three arrays, compute the requested measures and print them.

    A measure undefined on these data (a baseline with one class present, GBC with one
    sample per class) is null with its reason; the others are printed as usual.
    """
    from app.measures import measure_report

    names = parse_names(args.measures)
    images = load_array(args.images, "images")
    texts = load_array(args.texts, "texts")
    labels = load_array(args.labels, "labels")
    try:
        report = measure_report(images, texts, labels, names=names, variant=args.variant)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json({"measures": report.values, "reasons": report.reasons})
    else:
        rows = [
            (k, "null" if v is None else f"{v:.6g}", report.reasons.get(k, ""))
            for k, v in report.values.items()
        ]
        print_table(rows, ("measure", "value", "note"))
    return 0
