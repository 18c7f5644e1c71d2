"""`iimm datasets list` prints a table (`--json` the items). The CLI talks to the service in process (its HTTP client
is a TestClient of the app on a migrated SQLite database)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import session_scope
from app.main import create_app
from app.models import Dataset, Project
from iimm_cli import main
from iimm_cli.client import ApiClient

KEY = "test-" + "c" * 40


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any]]:
    settings = Settings(data_dir=tmp_path, bootstrap_api_key=KEY, run_maintenance_in_api=False)
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as http:

        def from_args(cls: type[ApiClient], args: object) -> ApiClient:
            client = ApiClient("http://testserver", KEY)
            client.http.close()
            client.http = http
            return client

        monkeypatch.setattr(ApiClient, "from_args", classmethod(from_args))
        yield http, app


def _dataset(app: Any, id_: str, name: str, **kw: Any) -> None:
    with session_scope(app.state.sessionmaker) as session:
        project = session.scalar(select(Project.id))
        session.add(
            Dataset(id=id_, project_id=project, name=name, status="ready", format="folder",
                    source="upload", uri=f"datasets/{id_}", class_names=["a", "b", "c"],
                    splits={"train": 60, "test": 20}, fingerprint="fp", **kw)
        )  # fmt: skip


def test_datasets_list_is_a_table(api: tuple[TestClient, Any], capsys: Any) -> None:
    http, app = api
    _dataset(app, "dst_1", "shapes")
    _dataset(app, "dst_2", "shapes-copy", duplicate_allowed=True)
    assert main(["datasets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "status", "classes", "splits", "copy", "of"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows == {
        "dst_1": ["shapes", "ready", "3", "train=60", "test=20", "-"],
        "dst_2": ["shapes-copy", "ready", "3", "train=60", "test=20", "dst_1"],
    }
    assert main(["datasets", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(
        json.dumps(http.get("/v1/datasets").json()["items"])
    )
