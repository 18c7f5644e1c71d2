"""The CLI prints the API's problem hints as its own flags: a duplicate upload's 409 says
`--allow-duplicate` and a delete with dependents says `--cascade` (the API's details say
`allow_duplicate=true` and `?cascade=true`), and those flags exist on the commands."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.deletion import DependentsError
from app.main import create_app
from iimm_cli import build_parser
from iimm_cli._common import CliError
from iimm_cli.client import ApiClient
from iimm_cli.datasets import upload

KEY = "hint-test-" + "k" * 20


def _folder(root: Path) -> Path:
    for c, colour in enumerate(("red", "blue")):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), colour).save(root / f"class{c}" / f"{i}.png")
    return root


def test_a_duplicate_upload_names_the_cli_flag(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var", bootstrap_api_key=KEY, run_maintenance_in_api=False
    )
    folder = _folder(tmp_path / "ds")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as http:
        client = ApiClient("http://testserver", KEY)
        client.http = http
        upload(client, folder, "colours")
        with pytest.raises(CliError) as err:
            upload(client, folder, "colours2")
        assert str(err.value).startswith("409: ")
        assert "pass --allow-duplicate to register a copy" in str(err.value)
        assert "allow_duplicate=true" not in str(err.value)
        assert upload(client, folder, "colours2", allow_duplicate=True)["name"] == "colours2"
    args = build_parser().parse_args(
        ["datasets", "upload", str(folder), "--name", "c", "--allow-duplicate"]
    )
    assert args.allow_duplicate is True


def test_a_delete_with_dependents_names_the_cli_flag() -> None:
    problem = DependentsError("dataset 'colours' (dst_1)", {"scores": 2})
    assert "?cascade=true" in problem.detail  # what an HTTP caller is told

    def answer(request: httpx.Request) -> httpx.Response:
        body = {"type": "/problems/conflict", "status": 409, "detail": problem.detail}
        return httpx.Response(409, json=body, headers={"content-type": "application/problem+json"})

    client = ApiClient("http://testserver", KEY)
    client.http = httpx.Client(base_url="http://testserver", transport=httpx.MockTransport(answer))
    with pytest.raises(CliError) as err:
        client.request("DELETE", "/v1/datasets/dst_1")
    assert "delete with --cascade to remove them too" in str(err.value)
    assert "cascade=true" not in str(err.value)
    assert build_parser().parse_args(["datasets", "delete", "dst_1", "--cascade"]).cascade is True
