"""`iimm models add|list|delete`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iimm_cli._common import print_json
from iimm_cli.client import ApiClient, add_client_args


def register(sub: Any) -> None:
    """Add the `models` subcommands."""
    m = sub.add_parser("models", help="base models on the API")
    msub = m.add_subparsers(dest="models_command", required=True)
    add = msub.add_parser("add", help="register a model by preset or arch + pretrained")
    add.add_argument("--name", required=True)
    add.add_argument("--preset")
    add.add_argument("--arch", help="open_clip architecture or architecture .json file")
    add.add_argument("--pretrained", help="tag, checkpoint path, or random")
    add_client_args(add)
    add.set_defaults(handler=run_add)
    ls = msub.add_parser("list")
    add_client_args(ls)
    ls.set_defaults(handler=run_list)
    rm = msub.add_parser("delete", help="delete a base model")
    rm.add_argument("id")
    rm.add_argument(
        "--cascade", action="store_true",
        help="also delete its results and cancel the jobs not final yet that use it",
    )  # fmt: skip
    add_client_args(rm)
    rm.set_defaults(handler=run_delete)


def local_path(value: str | None) -> str | None:
    """`value` made absolute when it names an existing file or folder here, else unchanged.

    The server and its workers read the paths of a model spec, not the CLI, so a path
    relative to the CLI's working directory (`workers/ml/configs/tiny-clip.json`) is sent
    absolute; architecture names, tags and `random` pass through untouched."""
    if value is None or Path(value).is_absolute() or not Path(value).exists():
        return value
    return str(Path(value).resolve())


def run_add(args: argparse.Namespace) -> int:
    """Register and print the model (existing local relative paths sent absolute)."""
    body = {k: getattr(args, k) for k in ("name", "preset", "arch", "pretrained")}
    body = {k: v for k, v in body.items() if v is not None}
    for key in ("arch", "pretrained"):
        if key in body:
            body[key] = local_path(body[key])
    print_json(ApiClient.from_args(args).request("POST", "/v1/models", json=body))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the project's models."""
    print_json(ApiClient.from_args(args).request("GET", "/v1/models")["items"])
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete one base model (with `--cascade`, also what was computed from it)."""
    client, path = ApiClient.from_args(args), f"/v1/models/{args.id}"
    if args.cascade:
        print(client.cascade_delete(path, f"model {args.id}"))
    else:
        client.request("DELETE", path)
    return 0
