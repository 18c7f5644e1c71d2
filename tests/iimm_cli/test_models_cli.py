"""`iimm models add` with the README's relative architecture path, against an API whose
working directory is not the repository: the CLI sends the local file's absolute path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iimm_cli import main
from iimm_cli.models import local_path
from tests.service.stack import ROOT, Stack, base_env

ARCH = "workers/ml/configs/tiny-clip.json"


class ElsewhereStack(Stack):
    """An embedded stack whose processes run in its data directory, not the repository."""

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, *args], env=self.env, cwd=self.data_dir, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("elsewhere")
    stack = ElsewhereStack("embedded", base_env(data_dir), data_dir)
    stack.start_api()
    try:
        yield stack
    finally:
        stack.stop()


def test_local_path_only_rewrites_existing_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert local_path(ARCH) == str(ROOT / ARCH)
    assert local_path("ViT-B-32") == "ViT-B-32"  # an architecture name, not a file here
    assert local_path("random") == "random"
    assert local_path("missing/arch.json") == "missing/arch.json"  # the server's to judge
    assert local_path("/abs/arch.json") == "/abs/arch.json"
    assert local_path(None) is None


def test_readme_models_add_works_from_the_checkout(
    api: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = api.client()
    # The server cannot see the relative path: what the CLI used to send fails.
    raw = client.post("/v1/models", json={"name": "raw", "arch": ARCH, "pretrained": "random"})
    assert raw.status_code == 422 and "not found" in raw.json()["detail"]
    monkeypatch.chdir(ROOT)
    argv = ["models", "add", "--name", "tiny", "--arch", ARCH, "--pretrained", "random",
            "--url", api.url, "--api-key", api.admin_key]  # fmt: skip
    assert main(argv) == 0
    model = json.loads(capsys.readouterr().out)
    assert model["name"] == "tiny" and model["arch"] == str((ROOT / ARCH).resolve())
