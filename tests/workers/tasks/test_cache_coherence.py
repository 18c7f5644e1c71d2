"""With a remote artifact store (fsspec's memory filesystem), a worker's copy of a dataset
goes once the dataset is deleted: the cascade removes the stored artifacts after its commit,
and the next prune of the worker's cache (the maintenance pass on its machine, the worker's
start, a job's end when the check is due) finds the source gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.workers.tasks.test_grid import drain
from tests.workers.tasks.test_shards import _service, submit_embed
from workers import runner


@pytest.fixture
def remote(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    root = f"memory://iimm-cache-coherence-{tmp_path.name}"
    yield from _service(
        tmp_path_factory.mktemp("cache"), IIMM_STORAGE_URL=root, IIMM_EMBED_SHARD_THRESHOLD="0"
    )


@pytest.mark.parametrize("pass_", ["maintenance", "worker start"])
def test_a_deleted_dataset_leaves_no_copy_on_the_worker(
    remote: tuple[TestClient, Path], pass_: str
) -> None:
    from app.jobs.maintenance import Maintenance

    c, archive = remote
    job_id, _, dataset = submit_embed(c, archive)
    drain()
    assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    env = runner.worker_env()
    assert not env.storage.is_local
    copy = env.storage.cache_dir / "datasets" / dataset
    assert copy.is_dir() and any(copy.rglob("*.png")), "the embed job read a local copy"

    assert c.delete(f"/v1/datasets/{dataset}?cascade=true").status_code == 204
    assert not env.storage.exists(f"datasets/{dataset}")
    assert copy.is_dir()  # the delete ran in the API: the worker still has its copy
    if pass_ == "maintenance":
        Maintenance(env.sessions, env.settings).sweep()
    else:
        runner.sweep_at_start(env.settings)
    assert not copy.exists()
    assert env.storage.cache.usage() == (0, 0)


def test_a_remote_reference_is_copied_once_within_the_bound(tmp_path: Path) -> None:
    """A dataset registered by a remote URI is fetched once into the same cache; its source
    is not the service's to delete, so the copy goes by the bound (and age), not by a
    check of the source."""
    import uuid
    from types import SimpleNamespace

    import fsspec

    from app.artifacts import Storage
    from workers.tasks.datasets import dataset_path

    fs, ref = fsspec.filesystem("memory"), f"/refs-{uuid.uuid4().hex}"
    for name in ("a", "b"):
        fs.pipe(f"{ref}/{name}/cat/1.png", b"p" * 600)
    storage = Storage(str(tmp_path / "store"), cache_dir=tmp_path / "cache", cache_max_bytes=1000)
    ctx = SimpleNamespace(storage=storage)
    rows = {n: {"source": "reference", "uri": f"memory://{ref}/{n}"} for n in ("a", "b")}
    first = dataset_path(ctx, rows["a"])  # type: ignore[arg-type]
    assert (first / "cat" / "1.png").read_bytes() == b"p" * 600
    fs.rm(f"{ref}/a", recursive=True)
    assert dataset_path(ctx, rows["a"]) == first  # type: ignore[arg-type]  # not refetched
    storage.cache.release()
    assert storage.cache.prune(check_sources=True).gone == []
    dataset_path(ctx, rows["b"])  # type: ignore[arg-type]  # 1200 bytes > 1000: a goes
    assert not first.exists() and storage.cache.usage() == (600, 1)
    fs.rm(ref, recursive=True)
