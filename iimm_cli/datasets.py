"""`iimm datasets upload|list|show|delete`."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError, print_json
from iimm_cli.client import ApiClient, add_client_args


def register(sub: Any) -> None:
    """Add the `datasets` subcommands."""
    ds = sub.add_parser("datasets", help="datasets on the API")
    dsub = ds.add_subparsers(dest="datasets_command", required=True)
    up = dsub.add_parser("upload", help="upload a folder or archive of class folders")
    up.add_argument("path")
    up.add_argument("--name", required=True)
    up.add_argument(
        "--allow-duplicate", action="store_true", help="register a copy of a dataset's content"
    )
    add_client_args(up)
    up.set_defaults(handler=run_upload)
    for name, fn in (("list", run_list), ("show", run_show), ("delete", run_delete)):
        p = dsub.add_parser(name)
        if name != "list":
            p.add_argument("id")
        if name == "delete":
            p.add_argument("--cascade", action="store_true", help="also delete its results")
        add_client_args(p)
        p.set_defaults(handler=fn)


def upload(
    client: ApiClient, path: Path, name: str, allow_duplicate: bool = False
) -> dict[str, Any]:
    """Upload a folder (zipped on the fly) or an archive; returns the dataset."""
    if not path.exists():
        raise CliError(f"{path} does not exist")
    tmp = None
    try:
        if path.is_dir():
            tmp = tempfile.mkdtemp(prefix="iimm-zip-")
            path = Path(shutil.make_archive(os.path.join(tmp, "dataset"), "zip", path))
        with path.open("rb") as fh:
            files = {"file": (path.name, fh, "application/octet-stream")}
            params = {"allow_duplicate": "true"} if allow_duplicate else {}
            return client.request(
                "POST", "/v1/datasets:upload", data={"name": name}, files=files, params=params
            )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run_upload(args: argparse.Namespace) -> int:
    """Upload and print the dataset."""
    client = ApiClient.from_args(args)
    print_json(upload(client, Path(args.path), args.name, args.allow_duplicate))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the project's datasets."""
    print_json(ApiClient.from_args(args).request("GET", "/v1/datasets")["items"])
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one dataset."""
    print_json(ApiClient.from_args(args).request("GET", f"/v1/datasets/{args.id}"))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete one dataset (with `--cascade`, also what was computed from it)."""
    params = {"cascade": "true"} if args.cascade else {}
    ApiClient.from_args(args).request("DELETE", f"/v1/datasets/{args.id}", params=params)
    return 0
