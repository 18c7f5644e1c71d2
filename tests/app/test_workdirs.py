"""Working folders named by their owner (`app.workdirs`): the sweep at a worker's start
removes those of a process killed with SIGKILL (a real one) or whose pid was reused, and
leaves those of live owners, of owners it cannot judge (another pid namespace) and names
that are not its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings
from app.deletion import INGEST_WORK_PREFIX
from app.workdirs import make_owned_dir, owner_prefix, parse_owner, process_start, space

CHILD = """
import sys
from app.workdirs import make_owned_dir
print(make_owned_dir(sys.argv[1], sys.argv[2], job=("job_0123abc", 3)), flush=True)
sys.stdin.read()  # until killed
"""


def _killed_owners_folder(root: Path, prefix: str) -> Path:
    """The folder a real process made before it was killed with SIGKILL (and reaped)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), prefix],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        folder = Path(child.stdout.readline().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert folder.is_dir() and folder.parent == root, folder
    (folder / "data").mkdir()
    (folder / "data" / "a.png").write_bytes(b"x" * 100)
    owner = parse_owner(folder.name, prefix)
    assert owner is not None and owner.pid == child.pid, folder.name
    assert (owner.job_id, owner.attempt) == ("job_0123abc", 3)
    return folder


def test_worker_start_removes_a_killed_workers_folders_and_keeps_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.runner import sweep_at_start

    data_dir = tmp_path / "var"
    (data_dir / "tmp").mkdir(parents=True)
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr("tempfile.tempdir", None)
    killed = _killed_owners_folder(data_dir / "tmp", INGEST_WORK_PREFIX)
    killed_decoder = _killed_owners_folder(system_tmp, "iimm-decode-")
    live = make_owned_dir(data_dir / "tmp", INGEST_WORK_PREFIX, job=("job_0123abd", 1))
    live_decoder = make_owned_dir(system_tmp, "iimm-decode-")
    pid, start = os.getpid(), process_start(os.getpid())
    assert start  # Linux: the start time is known
    # this process's pid, another start time: the pid was reused after its owner died
    reused = data_dir / "tmp" / f"{INGEST_WORK_PREFIX}{pid}-{start + 1}-{space()}-job_1.1-abc"
    # a dead pid of another pid namespace (another container on the volume): not ours to judge
    elsewhere = data_dir / "tmp" / f"{INGEST_WORK_PREFIX}{killed.name.split('-')[2]}-1-0000ffff-a"
    unnamed = data_dir / "tmp" / f"{INGEST_WORK_PREFIX}x1y2"  # an older name with no owner
    for folder in (reused, elsewhere, unnamed):
        folder.mkdir()

    sweep_at_start(Settings(data_dir=data_dir))

    assert not killed.exists() and not killed_decoder.exists() and not reused.exists()
    assert live.is_dir() and live_decoder.is_dir()
    assert elsewhere.is_dir() and unnamed.is_dir()


def test_names_record_the_owner_and_older_decoder_names_still_parse() -> None:
    prefix = owner_prefix("iimm-ingest-", job=("job_0189", 2))
    owner = parse_owner(prefix + "k2_x9", "iimm-ingest-")
    assert owner is not None
    assert (owner.pid, owner.start, owner.space) == (
        os.getpid(),
        process_start(os.getpid()),
        space(),
    )
    assert (owner.job_id, owner.attempt) == ("job_0189", 2)
    legacy = parse_owner("iimm-decode-4242-k2_x9", "iimm-decode-")
    assert legacy is not None and (legacy.pid, legacy.start, legacy.job_id) == (4242, 0, None)
    for name in ("iimm-ingest-x", "iimm-ingest-1-2-3-job.x-r", "other-1-2-3-r"):
        assert parse_owner(name, "iimm-ingest-") is None, name
