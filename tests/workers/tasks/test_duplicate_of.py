"""A dataset registered with `allow_duplicate` says which dataset it copies: `duplicate_of`
is the id of the project's dataset with the same content (the one registered without
`allow_duplicate` first), in the read and the list; null for the original and for a copy
whose content no other dataset shares any more. In process, the ingest jobs run here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.test_api import upload
from tests.workers.tasks.test_grid import drain
from tests.workers.tasks.test_shards import _service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    yield from _service(tmp_path_factory.mktemp("duplicate-of"))


def _ingested(c: TestClient, archive: Path, name: str, allow_duplicate: bool) -> dict[str, Any]:
    accepted = upload(c, archive, name, allow_duplicate, wait=False)  # type: ignore[arg-type]
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["duplicate_of"] is None  # content not read yet
    drain()
    body = c.get(f"/v1/datasets/{accepted.json()['id']}").json()
    assert body["status"] == "ready", body
    return dict(body)


def test_a_copy_names_the_dataset_it_copies(service: tuple[TestClient, Path]) -> None:
    c, archive = service
    original = _ingested(c, archive, "original", allow_duplicate=False)
    assert original["duplicate_of"] is None
    first = _ingested(c, archive, "copy-1", allow_duplicate=True)
    second = _ingested(c, archive, "copy-2", allow_duplicate=True)
    assert first["duplicate_of"] == original["id"]
    assert second["duplicate_of"] == original["id"]  # the original, not the older copy
    listed = {d["id"]: d["duplicate_of"] for d in c.get("/v1/datasets").json()["items"]}
    assert listed == {original["id"]: None, first["id"]: original["id"],
                      second["id"]: original["id"]}  # fmt: skip

    assert c.delete(f"/v1/datasets/{original['id']}").status_code == 204
    assert c.get(f"/v1/datasets/{first['id']}").json()["duplicate_of"] == second["id"]
    assert c.delete(f"/v1/datasets/{second['id']}").status_code == 204
    assert c.get(f"/v1/datasets/{first['id']}").json()["duplicate_of"] is None
