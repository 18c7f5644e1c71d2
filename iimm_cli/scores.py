"""`iimm scores`: stored measures as a table (or JSON)."""

from __future__ import annotations

import argparse
from typing import Any

from iimm_cli._common import print_json, print_table
from iimm_cli.client import ApiClient, add_client_args


def register(sub: Any) -> None:
    """Add the `scores` subcommand."""
    p = sub.add_parser("scores", help="stored measures of (model, dataset, split)")
    for opt in ("--model-id", "--dataset-id", "--split", "--measure"):
        p.add_argument(opt)
    p.add_argument("--json", action="store_true")
    add_client_args(p)
    p.set_defaults(handler=run_scores)


def fmt(value: float | None) -> str:
    """A number for the table."""
    return "n/a" if value is None else f"{value:.6f}"


def score_rows(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(measure, value [low, high]) rows for `print_table`."""
    from app.measures.registry import ALL_MEASURES

    order = {name: i for i, name in enumerate(ALL_MEASURES)}
    rows = []
    for s in sorted(items, key=lambda s: (order.get(s["measure"], len(order)), s["measure"])):
        ci = f"  [{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]" if s.get("ci_low") is not None else ""
        rows.append((s["measure"], fmt(s["value"]) + ci))
    return rows


def run_scores(args: argparse.Namespace) -> int:
    """Print the scores."""
    params = {
        k: getattr(args, k)
        for k in ("model_id", "dataset_id", "split", "measure")
        if getattr(args, k)
    }
    items = ApiClient.from_args(args).request("GET", "/v1/scores", params=params)["items"]
    if args.json:
        print_json(items)
    else:
        print_table(score_rows(items), ("measure", "value"))
    return 0
