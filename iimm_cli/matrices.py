"""`iimm matrices`: the accuracy matrix of a base model and a method (table, CSV or JSON)."""

from __future__ import annotations

import argparse
from typing import Any

from iimm_cli._common import print_json
from iimm_cli.client import ApiClient, add_client_args


def register(sub: Any) -> None:
    """Add the `matrices` subcommand."""
    p = sub.add_parser("matrices", help="accuracy matrix: learning (G) and forgetting")
    p.add_argument("--base-model", required=True, help="base model id")
    p.add_argument("--method", default="full", help="fine-tuning method (default: full)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="print the server's CSV")
    out.add_argument("--json", action="store_true", help="print the JSON document")
    add_client_args(p)
    p.set_defaults(handler=run_matrices)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def format_table(matrix: dict[str, Any]) -> str:
    """Rows = training dataset (zero-shot first), columns = evaluation datasets, G, ood; a
    flagged row is marked (*) and its reason printed under the table."""
    ids = [d["id"] for d in matrix["datasets"]]
    header = ["train \\ eval", *(d["name"] for d in matrix["datasets"]), "gain", "ood_change"]
    lines = [header, ["zero-shot", *(_fmt(matrix["zero_shot"].get(i)) for i in ids), "", ""]]
    notes = []
    for row in matrix["rows"]:
        cells = (_fmt(row["accuracies"].get(i)) for i in ids)
        name = row["train_dataset_name"] or row["train_dataset_id"]
        gain = _fmt(row["gain"])
        if row.get("flag"):
            gain += "*"
            notes.append(f"* {name}: {row['flag']}")
        lines.append([name, *cells, gain, _fmt(row["ood_change"])])
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    return "\n".join(
        [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        + notes
    )


def _csv(client: ApiClient, params: dict[str, str]) -> str:
    return client.send("GET", "/v1/matrices", params={**params, "format": "csv"}).text


def run_matrices(args: argparse.Namespace) -> int:
    """Print the matrix."""
    client = ApiClient.from_args(args)
    params = {"base_model_id": args.base_model, "method": args.method}
    if args.csv:
        print(_csv(client, params), end="")
        return 0
    matrix = client.request("GET", "/v1/matrices", params=params)
    if args.json:
        print_json(matrix)
    else:
        print(format_table(matrix))
    return 0
