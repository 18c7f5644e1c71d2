"""`iimm demo`'s service child ends with the demo: SIGTERM (the demo stops it and waits) and
SIGKILL (the kernel's parent-death signal). The child here is a stand-in that answers
`/healthz` (Python's http.server) so the test needs no model; the launcher is the demo's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iimm_cli.demo import _free_port

PARENT = """
import sys
from pathlib import Path
from iimm_cli.demo import running_service
port = int(sys.argv[2])
cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
with running_service(Path(sys.argv[1]), port, cmd) as proc:
    print(proc.pid, flush=True)
    proc.wait()
"""


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, bound_s: float = 60.0) -> bool:
    deadline = time.monotonic() + bound_s  # a failure bound only
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_service_child_ends_with_the_demo(tmp_path: Path, sig: signal.Signals) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path), str(_free_port())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())  # printed once the child answers /healthz
        assert _alive(child)
        parent.send_signal(sig)
        assert _wait_gone(child), "the service child outlived the demo"
        code = parent.wait(timeout=60)
        assert code == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGKILL)
    finally:
        parent.kill()
        parent.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
