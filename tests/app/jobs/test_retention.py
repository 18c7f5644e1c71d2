"""Retention: the maintenance pass removes what finished jobs leave (a `measures:upload`
job's arrays after `IIMM_JOB_FILES_RETENTION_S`) and stale upload working folders, and
never what a live row points to. Real files on disk and rows in a migrated database,
counted before and after one pass (`Maintenance.tick`, what `iimm maintenance --once` and
the embedded loop run)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope, utcnow
from app.jobs.maintenance import Maintenance
from app.migrate import upgrade
from app.models import Dataset, Job, Project

DAY_S = 86400.0
HOUR_S = 3600.0


def _write(folder: Path, age_s: float, files: int = 2) -> None:
    """A folder of `files` small files, all last modified `age_s` seconds ago."""
    folder.mkdir(parents=True)
    stamp = time.time() - age_s
    for i in range(files):
        path = folder / f"part{i}.bin"
        path.write_bytes(os.urandom(100 + i))
        os.utime(path, (stamp, stamp))
    os.utime(folder, (stamp, stamp))


def _job(job_id: str, status: str, artifact: str, finished_ago_s: float | None) -> Job:
    finished = utcnow() - timedelta(seconds=finished_ago_s) if finished_ago_s is not None else None
    return Job(id=job_id, project_id="prj_1", type="measures", queue="cpu", status=status,
               params={"type": "measures", "artifact": artifact, "variant": "paper"},
               finished_at=finished)  # fmt: skip


def _listing(root: Path, prefix: str) -> set[str]:
    return {p.name for p in (root / prefix).iterdir()} if (root / prefix).exists() else set()


def test_finished_jobs_files_go_after_retention_live_ones_stay(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    settings = Settings(
        data_dir=data_dir, database_url=f"sqlite:///{tmp_path / 'r.db'}",
        orphan_min_age_s=HOUR_S, job_files_retention_s=DAY_S,
    )  # fmt: skip
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = make_sessionmaker(engine)
    art = Path(settings.artifacts_url)
    old = 2 * DAY_S
    expected_kept = {
        "upl_queued": ("queued", None),  # may still run: kept, however old its file
        "upl_running": ("running", None),
        "upl_recent": ("succeeded", HOUR_S),  # finished within the retention
    }
    expected_gone = {
        "upl_done": ("succeeded", old - HOUR_S),
        "upl_failed": ("failed", old - HOUR_S),
        "upl_cancelled": ("cancelled", 1.5 * DAY_S),
    }
    with session_scope(factory) as s:
        s.add(Project(id="prj_1", name="p"))
        s.flush()
        for i, (name, (status, ago)) in enumerate({**expected_kept, **expected_gone}.items()):
            s.add(_job(f"job_{i}", status, f"measures/{name}", ago))
            _write(art / "measures" / name, old)
        s.add(Dataset(id="dst_live", project_id="prj_1", name="d", format="imagefolder",
                      source="upload", uri="datasets/dst_live", class_names=["a", "b"],
                      splits={"test": 2}, fingerprint="f" * 64))  # fmt: skip
    _write(art / "datasets" / "dst_live", old)
    _write(art / "measures" / "upl_orphan", old)  # stored by a request that never committed
    _write(art / "measures" / "upl_fresh", 60.0)  # its request's row may not be committed yet
    _write(data_dir / "tmp" / "iimm-upload-killed", old)  # a process killed mid-upload
    _write(data_dir / "tmp" / "iimm-upload-live", 5.0)  # an upload in progress
    _write(data_dir / "iimm-model-killed", old)
    _write(data_dir / "tmp" / "someone-elses", old)

    measures_before = _listing(art, "measures")
    assert len(measures_before) == 8
    Maintenance(factory, settings).tick()

    assert _listing(art, "measures") == {*expected_kept, "upl_fresh"}
    assert _listing(art, "datasets") == {"dst_live"}
    assert all(len(list((art / "measures" / k).iterdir())) == 2 for k in expected_kept)
    assert _listing(data_dir, "tmp") == {"iimm-upload-live", "someone-elses"}
    assert not (data_dir / "iimm-model-killed").exists()
    with session_scope(factory) as s:  # rows are untouched: the results live in them
        assert s.query(Job).count() == 6
    engine.dispose()


def test_ingest_folders_of_attempts_that_are_over_go_live_ones_stay(tmp_path: Path) -> None:
    """A worker on another machine (its pid is not ours to judge) killed mid-ingest: the
    maintenance pass removes its folder once its attempt no longer holds the job (retried,
    finished, deleted), and keeps the folder of the attempt that holds it."""
    data_dir = tmp_path / "var"
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = make_sessionmaker(engine)
    attempts = {  # job: (status, attempts)
        "job_retried": ("running", 2),  # attempt 1 was killed, attempt 2 runs elsewhere
        "job_done": ("succeeded", 1),
        "job_requeued": ("queued", 1),  # attempt 1's lease expired: the reaper requeued it
    }
    with session_scope(factory) as s:
        s.add(Project(id="prj_1", name="p"))
        s.flush()
        for job_id, (status, n) in attempts.items():
            s.add(Job(id=job_id, project_id="prj_1", type="ingest", queue="cpu", status=status,
                      params={"type": "ingest", "dataset_id": "dst_1"}, attempts=n))  # fmt: skip
    elsewhere = "1-1-0000ffff"  # a pid, its start and another machine's pid namespace
    names = {
        "kept": f"iimm-ingest-{elsewhere}-job_retried.2-a1",
        "over": f"iimm-ingest-{elsewhere}-job_retried.1-a2",
        "done": f"iimm-ingest-{elsewhere}-job_done.1-a3",
        "requeued": f"iimm-ingest-{elsewhere}-job_requeued.1-a4",
        "deleted": f"iimm-ingest-{elsewhere}-job_deleted.1-a5",
    }
    for name in names.values():
        _write(data_dir / "tmp" / name, 5.0)

    Maintenance(factory, settings).sweep()

    assert _listing(data_dir, "tmp") == {names["kept"]}
    engine.dispose()
