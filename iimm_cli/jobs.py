"""`iimm jobs submit|show|wait|list|cancel`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from iimm_cli._common import CliError, print_json
from iimm_cli.client import ApiClient, add_client_args


def register(sub: Any) -> None:
    """Add the `jobs` subcommands."""
    j = sub.add_parser("jobs", help="jobs on the API")
    jsub = j.add_subparsers(dest="jobs_command", required=True)
    s = jsub.add_parser("submit", help="submit a job, e.g. `embed --model-id M --dataset-id D`")
    s.add_argument("type")
    s.add_argument("--model-id")
    s.add_argument("--dataset-id")
    s.add_argument("--split")
    s.add_argument("--param", action="append", default=[], help="KEY=JSON_VALUE (repeatable)")
    s.add_argument("--idempotency-key")
    s.add_argument(
        "--wait", action="store_true",
        help="wait for the job, with a progress bar (stage, units, ETA) on a terminal; "
        "exit 1 unless it succeeds",
    )  # fmt: skip
    s.add_argument("--timeout", type=float, default=3600.0, help="seconds to --wait at most")
    add_client_args(s)
    s.set_defaults(handler=run_submit)
    for name, fn in (("show", run_show), ("wait", run_wait), ("cancel", run_cancel)):
        p = jsub.add_parser(name)
        p.add_argument("id")
        p.add_argument("--timeout", type=float, default=600.0)
        add_client_args(p)
        p.set_defaults(handler=fn)
    ls = jsub.add_parser("list")
    ls.add_argument("--status")
    add_client_args(ls)
    ls.set_defaults(handler=run_list)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"type": args.type}
    for key in ("model_id", "dataset_id", "split"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    for item in args.param:
        key, sep, raw = item.partition("=")
        if not sep:
            raise CliError(f"--param {item!r} must be KEY=VALUE")
        try:
            body[key] = json.loads(raw)
        except ValueError:
            body[key] = raw
    return body


def run_submit(args: argparse.Namespace) -> int:
    """Submit (and optionally wait for) a job; prints it."""
    client = ApiClient.from_args(args)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    job = client.request("POST", "/v1/jobs", json=_body(args), headers=headers)
    if not args.wait:
        print_json(job)
        return 0
    return finished(client.wait_job(job["id"], timeout=args.timeout, bar=True))


def run_show(args: argparse.Namespace) -> int:
    """Print one job."""
    print_json(ApiClient.from_args(args).request("GET", f"/v1/jobs/{args.id}"))
    return 0


def run_wait(args: argparse.Namespace) -> int:
    """Wait for a job to finish; exit 1 if it failed."""
    return finished(ApiClient.from_args(args).wait_job(args.id, timeout=args.timeout, bar=True))


def finished(job: dict[str, Any]) -> int:
    """Print a finished job; 0 if it succeeded, else 1 with its error on stderr."""
    print_json(job)
    if job["status"] == "succeeded":
        return 0
    print(f"job {job['id']} {job['status']}: {job.get('error') or ''}".rstrip(": "),
          file=sys.stderr)  # fmt: skip
    return 1


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel a job."""
    print_json(ApiClient.from_args(args).request("POST", f"/v1/jobs/{args.id}:cancel"))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """List jobs, optionally by status."""
    params = {"status": args.status} if args.status else {}
    print_json(ApiClient.from_args(args).request("GET", "/v1/jobs", params=params)["items"])
    return 0
