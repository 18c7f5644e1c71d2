"""A multipart upload with a form field the operation does not take is a 422 naming the
field and the fields it takes, as an unknown query parameter is (`app.deps.known_form`);
`allow_duplicate` sent as a form field is told to be the query parameter it is. In process,
on a migrated SQLite database: nothing is stored for a refused upload."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

KEY = "test-" + "f" * 40


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, bootstrap_api_key=KEY, run_maintenance_in_api=False)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/0.txt", "not read: the ingest job does not run here")
    return buf.getvalue()


def _errors(resp: object) -> list[dict[str, object]]:
    assert resp.status_code == 422, resp.text  # type: ignore[attr-defined]
    assert resp.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    return resp.json()["errors"]  # type: ignore[attr-defined,no-any-return]


def test_allow_duplicate_as_a_form_field_is_told_to_be_a_query_parameter(
    client: TestClient,
) -> None:
    files = {"file": ("d.zip", _zip())}
    resp = client.post(
        "/v1/datasets:upload", data={"name": "d", "allow_duplicate": "true"}, files=files
    )
    (error,) = _errors(resp)
    assert error["loc"] == ["body", "allow_duplicate"]
    assert error["type"] == "extra_forbidden"
    msg = str(error["msg"])
    assert "this operation takes the form fields file, manifest, name, name_encoding" in msg
    assert "pass it as the query parameter ?allow_duplicate=true" in msg
    assert resp.json()["detail"].startswith("body.allow_duplicate: unknown form field")
    assert client.get("/v1/datasets").json()["items"] == []  # nothing stored

    resp = client.post("/v1/datasets:upload", data={"name": "d", "colour": "red"}, files=files)
    (error,) = _errors(resp)
    assert error["loc"] == ["body", "colour"] and "query parameter" not in str(error["msg"])

    ok = client.post(
        "/v1/datasets:upload", data={"name": "d"}, files=files, params={"allow_duplicate": "true"}
    )
    assert ok.status_code == 202, ok.text


def test_other_uploads_name_unknown_form_fields(client: TestClient) -> None:
    files = {"architecture": ("a.json", b"{}"), "checkpoint": ("c.pt", b"x")}
    resp = client.post("/v1/models:upload", data={"name": "m", "pretrained": "x"}, files=files)
    (error,) = _errors(resp)
    assert error["loc"] == ["body", "pretrained"]
    assert "takes the form fields architecture, checkpoint, name" in str(error["msg"])
    resp = client.post(
        "/v1/measures:upload", data={"measures": "iimm", "level": "0.9"},
        files={"file": ("a.npz", b"x")},
    )  # fmt: skip
    (error,) = _errors(resp)
    assert error["loc"] == ["body", "level"]
    assert "takes the form fields file, measures, variant" in str(error["msg"])
