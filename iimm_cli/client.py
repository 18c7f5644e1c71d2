"""A small HTTP client of the IIMM API for the CLI (and the demo)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError

FINAL = ("succeeded", "failed", "cancelled")

#: Query parameters the API's problems tell a caller to pass, and the CLI flags that pass
#: them (`iimm datasets upload --allow-duplicate`, `iimm datasets delete --cascade`).
QUERY_FLAGS = {"allow_duplicate": "--allow-duplicate", "cascade": "--cascade"}
_QUERY_HINT = re.compile(r"\??\b(" + "|".join(QUERY_FLAGS) + r")=true\b")


def as_cli_hint(detail: str) -> str:
    """A problem's `detail` in the CLI's terms: `?cascade=true` or `allow_duplicate=true`
    (what the API asks of an HTTP caller) become the flags `--cascade`, `--allow-duplicate`."""
    return _QUERY_HINT.sub(lambda m: QUERY_FLAGS[m[1]], detail)


def add_client_args(parser: argparse.ArgumentParser) -> None:
    """--url, --api-key and --data-dir (where embedded mode keeps admin.key).

    They are added to the top-level parser and to each API subcommand without defaults
    (`from_args` applies them), so they work before the subcommand (`iimm --url U jobs list`)
    and after it (`iimm jobs list --url U`); given in both places, the subcommand's wins."""
    parser.add_argument(
        "--url", default=argparse.SUPPRESS,
        help="the API's base URL (default: $IIMM_URL or http://127.0.0.1:8000)",
    )  # fmt: skip
    parser.add_argument(
        "--api-key", default=argparse.SUPPRESS,
        help="API key (default: $IIMM_API_KEY, else DATA_DIR/admin.key)",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", default=argparse.SUPPRESS,
        help="data directory of the embedded service (default: $IIMM_DATA_DIR or ./var)",
    )  # fmt: skip


class ApiClient:
    """Calls the API with a key; problem+json errors become CliError with their detail."""

    def __init__(self, url: str, key: str, timeout: float = 60.0) -> None:
        import httpx

        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        """A client from --url/--api-key (or $IIMM_URL/$IIMM_API_KEY), falling back to
        `<data dir>/admin.key`."""
        url = getattr(args, "url", None) or os.environ.get("IIMM_URL", "http://127.0.0.1:8000")
        key = getattr(args, "api_key", None) or os.environ.get("IIMM_API_KEY")
        if not key:
            data_dir = getattr(args, "data_dir", None) or os.environ.get("IIMM_DATA_DIR", "./var")
            path = Path(data_dir) / "admin.key"
            if not path.is_file():
                raise CliError(f"no API key: pass --api-key, set IIMM_API_KEY, or create {path}")
            key = path.read_text().strip()
        return cls(url, key)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send a request; returns the decoded JSON (None for 204)."""
        resp = self.send(method, path, **kw)
        return None if resp.status_code == 204 else resp.json()

    def send(self, method: str, path: str, **kw: Any) -> Any:
        """Send a request; the raw response, or CliError with the problem's detail (its
        query-parameter hints given as CLI flags, `as_cli_hint`)."""
        import httpx

        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.http.base_url}: {exc}") from None
        return self.checked(resp)

    @staticmethod
    def checked(resp: Any) -> Any:
        """`resp`, or CliError with its problem's detail when it is an error."""
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise CliError(f"{resp.status_code}: {as_cli_hint(str(detail))}")
        return resp

    def cascade_delete(self, path: str, what: str) -> str:
        """DELETE `path` with ?cascade=true and say what went: the dependents and active jobs
        the API counts when asked without cascade (its 409, `dependents`, `active_job_ids`),
        then the cascade. Nothing depending on it, the first request has deleted it."""
        import httpx

        try:
            resp = self.http.request("DELETE", path)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.http.base_url}: {exc}") from None
        if resp.status_code == 204:
            return f"deleted {what} (nothing depended on it)"
        body = resp.json() if resp.status_code == 409 else None
        if not isinstance(body, dict) or "dependents" not in body:
            self.checked(resp)
            raise CliError(f"{resp.status_code}: unexpected answer to DELETE {path}")
        self.request("DELETE", path, params={"cascade": "true"})
        from app.dependent_kinds import counted  # a leaf: no server machinery

        found = dict(body["dependents"])
        jobs = found.pop("active_jobs", 0)
        removed = ", ".join(counted(n, kind) for kind, n in found.items())
        line = f"deleted {what}" + (f" with {removed}" if removed else "")
        if jobs:
            ids = list(body.get("active_job_ids") or [])
            more = f" …and {jobs - len(ids)} more" if jobs > len(ids) else ""
            line += f"; cancelled {counted(jobs, 'active_jobs')} ({', '.join(ids)}{more})"
        return line

    def wait_job(
        self, job_id: str, timeout: float = 600.0, poll: float = 0.5, *, bar: bool = False
    ) -> dict[str, Any]:
        """Poll a job until it reaches a final state (or raise after `timeout` seconds);
        with `bar`, draw its progress on stderr (`iimm_cli.progress`) meanwhile."""
        from iimm_cli.progress import job_bar

        deadline = time.monotonic() + timeout
        with job_bar(job_id) if bar else contextlib.nullcontext() as shown:
            while True:
                job = self.request("GET", f"/v1/jobs/{job_id}")
                if shown is not None:
                    shown.update(job)
                if job["status"] in FINAL:
                    return job
                if time.monotonic() > deadline:
                    raise CliError(f"job {job_id} still {job['status']} after {timeout:.0f}s")
                time.sleep(poll)
