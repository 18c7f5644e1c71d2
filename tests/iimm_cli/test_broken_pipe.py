"""A reader that closes `iimm`'s output early (`iimm datasets list | head -5`) ends the command
quietly with 141 (128 + SIGPIPE, what a shell reports for git or cat there), without a
BrokenPipeError traceback: a real `iimm` process writes into a pipe whose reader closes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from iimm_cli import BROKEN_PIPE_EXIT

ROOT = Path(__file__).resolve().parents[2]
#: Far more than a pipe holds (64 KiB by default), so the command is still writing when the
#: reader closes, whatever the scheduling.
N_DATASETS = 20_000


class _Datasets(BaseHTTPRequestHandler):
    """A stand-in API: GET /v1/datasets answers many datasets (the CLI's pipe handling is
    under test here, not the service)."""

    def do_GET(self) -> None:
        items = [{"id": f"dst_{i:05d}", "name": f"set-{i}", "status": "ready",
                  "class_names": ["a", "b"], "splits": {"test": 10}, "duplicate_of": None}
                 for i in range(N_DATASETS)]  # fmt: skip
        body = json.dumps({"items": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Datasets)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _iimm(*args: str, **kw: object) -> subprocess.Popen[bytes]:
    """The `iimm` console script's entry point, run as it is (sys.exit(main()))."""
    code = "import sys, iimm_cli; sys.exit(iimm_cli.main())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]  # fmt: skip


def test_a_reader_closing_after_the_first_lines_ends_the_command_quietly(api_url: str) -> None:
    proc = _iimm("datasets", "list", "--url", api_url, "--api-key", "k", stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = [proc.stdout.readline() for _ in range(5)]  # as `head -5` does, then closes
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == BROKEN_PIPE_EXIT, err
    assert head[0].split() == [b"id", b"name", b"status", b"classes", b"splits", b"copy", b"of"]
    assert b"dst_00000" in b"".join(head)
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit


def test_a_reader_gone_before_anything_is_written(api_url: str) -> None:
    """The same where the pipe has no reader left when the command writes its first line."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = _iimm("datasets", "list", "--url", api_url, "--api-key", "k", stdout=write)
    finally:
        os.close(write)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert proc.wait() == BROKEN_PIPE_EXIT, err
    assert err == ""
