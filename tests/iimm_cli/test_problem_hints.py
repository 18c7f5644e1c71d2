"""The CLI prints the API's problem hints as its own flags: a duplicate upload's 409 (the
dataset's ingest error) says `--allow-duplicate` and a delete with dependents says `--cascade`
(the API's details say `allow_duplicate=true` and `?cascade=true`), and those flags exist on
the commands. The API is answered by httpx's MockTransport with the service's own messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from app.datasets.service import ensure_not_duplicate
from app.deletion import DependentsError
from app.errors import ConflictError
from iimm_cli import build_parser, main
from iimm_cli.client import ApiClient


def _duplicate_detail() -> str:
    """What the service says of a second upload of the same content."""

    class OneRow:
        def execute(self, _: object) -> Any:
            return SimpleNamespace(first=lambda: SimpleNamespace(name="colours", id="dst_1"))

    with pytest.raises(ConflictError) as err:
        ensure_not_duplicate(OneRow(), "prj_1", "fp")  # type: ignore[arg-type]
    assert "allow_duplicate=true" in err.value.detail  # what an HTTP caller is told
    return err.value.detail


def _serve(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    def from_args(cls: type[ApiClient], args: object) -> ApiClient:
        client = ApiClient("http://testserver", "key")
        client.http = httpx.Client(
            base_url="http://testserver", transport=httpx.MockTransport(answer)
        )
        return client

    monkeypatch.setattr(ApiClient, "from_args", classmethod(from_args))


def test_a_duplicate_upload_names_the_cli_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = _duplicate_detail()
    failed = {"id": "dst_2", "status": "failed", "error": {"status": 409, "detail": detail}}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                202, json={"id": "dst_2", "status": "validating", "job_id": "job_1"}
            )
        if request.url.path == "/v1/jobs/job_1":
            return httpx.Response(200, json={"id": "job_1", "status": "succeeded"})
        return httpx.Response(200, json=failed)

    _serve(monkeypatch, answer)
    (tmp_path / "a.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    argv = ["datasets", "upload", str(tmp_path / "a.zip"), "--name", "colours2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "409: " in err and "pass --allow-duplicate to register a copy" in err, err
    assert "allow_duplicate=true" not in err
    assert build_parser().parse_args([*argv, "--allow-duplicate"]).allow_duplicate is True


def test_a_delete_with_dependents_names_the_cli_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = DependentsError("dataset 'colours' (dst_1)", {"scores": 2})
    assert "?cascade=true" in problem.detail  # what an HTTP caller is told

    def answer(request: httpx.Request) -> httpx.Response:
        body = {"type": "/problems/conflict", "status": 409, "detail": problem.detail}
        return httpx.Response(409, json=body, headers={"content-type": "application/problem+json"})

    _serve(monkeypatch, answer)
    assert main(["datasets", "delete", "dst_1"]) == 2
    err = capsys.readouterr().err
    assert "409: " in err and "delete with --cascade to remove them too" in err, err
    assert "cascade=true" not in err
    assert build_parser().parse_args(["datasets", "delete", "dst_1", "--cascade"]).cascade is True
