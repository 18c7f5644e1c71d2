"""`iimm datasets upload|add|list|show|delete`.

The API answers an upload or a reference at once with the dataset `validating` (202) and an
`ingest` job that checks and decodes it on a worker; `upload` and `add` wait for that job
(with a progress bar on a terminal) and print the dataset once `ready`, or fail with the
problem the job found, as the synchronous API did; `--no-wait` prints the `validating`
dataset at once (`iimm jobs wait <job_id>` later).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError, print_json, print_table
from iimm_cli.client import ApiClient, add_client_args


def register(sub: Any) -> None:
    """Add the `datasets` subcommands."""
    ds = sub.add_parser("datasets", help="datasets on the API")
    dsub = ds.add_subparsers(dest="datasets_command", required=True)
    up = dsub.add_parser("upload", help="upload a folder or archive of class folders")
    up.add_argument("path")
    up.add_argument("--name", required=True)
    add = dsub.add_parser(
        "add", help="register a dataset where it lives (file://, torchvision://, s3://)"
    )
    add.add_argument("uri")
    add.add_argument("--name", required=True)
    add.add_argument("--format", default=None, help="folder, csv, parquet, webdataset, ...")
    for p in (up, add):
        p.add_argument(
            "--allow-duplicate", action="store_true", help="register a copy of a dataset's content"
        )
        p.add_argument(
            "--no-wait", action="store_true",
            help="print the dataset `validating` at once instead of waiting for its ingest job",
        )  # fmt: skip
        add_client_args(p)
    up.set_defaults(handler=run_upload)
    add.set_defaults(handler=run_add)
    for name, fn in (("list", run_list), ("show", run_show), ("delete", run_delete)):
        p = dsub.add_parser(name)
        if name != "list":
            p.add_argument("id")
        if name == "delete":
            p.add_argument(
                "--cascade", action="store_true",
                help="also delete its results and cancel the jobs not final yet that use it",
            )  # fmt: skip
        if name == "list":
            p.add_argument("--json", action="store_true", help="print the full JSON")
        add_client_args(p)
        p.set_defaults(handler=fn)


def wait_ingested(
    client: ApiClient, dataset: dict[str, Any], *, bar: bool = False
) -> dict[str, Any]:
    """Wait for the ingest job of a `validating` dataset; the dataset once `ready`, or
    CliError with its problem (``422: archive rejected: ...``) when it failed."""
    if dataset.get("status") == "validating" and dataset.get("job_id"):
        client.wait_job(dataset["job_id"], timeout=3600, bar=bar)
        dataset = client.request("GET", f"/v1/datasets/{dataset['id']}")
    if dataset.get("status") == "failed":
        error = dataset.get("error") or {}
        raise CliError(f"{error.get('status', 422)}: {error.get('detail', 'validation failed')}")
    return dataset


def upload(
    client: ApiClient,
    path: Path,
    name: str,
    allow_duplicate: bool = False,
    *,
    wait: bool = True,
    bar: bool = False,
) -> dict[str, Any]:
    """Upload a folder (zipped on the fly) or an archive; returns the dataset, by default
    once its ingest job made it `ready` (`wait_ingested`), else `validating`."""
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
            dataset = client.request(
                "POST", "/v1/datasets:upload", data={"name": name}, files=files, params=params
            )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return wait_ingested(client, dataset, bar=bar) if wait else dataset


def run_upload(args: argparse.Namespace) -> int:
    """Upload, wait for the ingest job (unless --no-wait) and print the dataset."""
    client = ApiClient.from_args(args)
    print_json(
        upload(client, Path(args.path), args.name, args.allow_duplicate, wait=not args.no_wait,
               bar=True)
    )  # fmt: skip
    return 0


def run_add(args: argparse.Namespace) -> int:
    """Register a reference, wait for the ingest job (unless --no-wait), print the dataset."""
    client = ApiClient.from_args(args)
    body = {"name": args.name, "uri": args.uri, **({"format": args.format} if args.format else {})}
    params = {"allow_duplicate": "true"} if args.allow_duplicate else {}
    dataset = client.request("POST", "/v1/datasets", json=body, params=params)
    print_json(dataset if args.no_wait else wait_ingested(client, dataset, bar=True))
    return 0


def dataset_rows(items: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One table row per dataset: id, name, status, classes, split sizes, what it copies."""
    return [
        (
            d["id"], d["name"], d["status"], str(len(d.get("class_names") or [])),
            " ".join(f"{k}={v}" for k, v in (d.get("splits") or {}).items()) or "-",
            d.get("duplicate_of") or "-",
        )
        for d in items
    ]  # fmt: skip


def run_list(args: argparse.Namespace) -> int:
    """Print the project's datasets (first page) as a table, or `--json`."""
    items = ApiClient.from_args(args).request("GET", "/v1/datasets")["items"]
    if args.json:
        print_json(items)
    else:
        print_table(dataset_rows(items), ("id", "name", "status", "classes", "splits", "copy of"))
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one dataset."""
    print_json(ApiClient.from_args(args).request("GET", f"/v1/datasets/{args.id}"))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete one dataset (with `--cascade`, also what was computed from it)."""
    client, path = ApiClient.from_args(args), f"/v1/datasets/{args.id}"
    if args.cascade:
        print(client.cascade_delete(path, f"dataset {args.id}"))
    else:
        client.request("DELETE", path)
    return 0
