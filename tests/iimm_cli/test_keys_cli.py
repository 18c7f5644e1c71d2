"""`iimm keys create`: a key for a project (made if new), printed once, that the API accepts
as that project's; on a database not yet migrated, a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded data directory named by IIMM_DATA_DIR (the settings re-read)."""
    from app.config import get_settings

    monkeypatch.setenv("IIMM_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_keys_create_prints_a_key_of_the_project(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.auth.service import authenticate, hash_key
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker, session_scope
    from app.main import create_app
    from iimm_cli import main

    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--project", "alpha"]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["keys", "create", "--project", "beta", "--admin"]) == 0
    admin = capsys.readouterr().out.strip()
    settings = Settings(data_dir=data_dir)
    engine = make_engine(settings.db_url)
    with session_scope(make_sessionmaker(engine)) as session:
        mine = authenticate(session=session, digest=hash_key(key))
        other = authenticate(session=session, digest=hash_key(admin))
    engine.dispose()
    assert mine is not None and (mine.project_name, mine.is_admin) == ("alpha", False)
    assert other is not None and (other.project_name, other.is_admin) == ("beta", True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        bad = client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}x"})
        assert bad.status_code == 401


def test_keys_create_on_a_database_not_migrated_says_so(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from iimm_cli import main

    assert main(["keys", "create", "--project", "alpha"]) != 0
    err = capsys.readouterr().err
    assert "database not ready" in err and "iimm db upgrade" in err
