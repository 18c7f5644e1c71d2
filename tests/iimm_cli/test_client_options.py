"""--url, --api-key and --data-dir before the subcommand (`iimm --url U jobs list`) or after
it, the subcommand's value winning; environment and admin.key fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from iimm_cli import build_parser
from iimm_cli.client import ApiClient


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IIMM_URL", "IIMM_API_KEY", "IIMM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def _client(*argv: str) -> ApiClient:
    return ApiClient.from_args(build_parser().parse_args(list(argv)))


def _key(client: ApiClient) -> str:
    return client.http.headers["Authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://a:1", "--api-key", "k1", "jobs", "list"],
        ["jobs", "list", "--url", "http://a:1", "--api-key", "k1"],
        ["--url", "http://a:1", "jobs", "list", "--api-key", "k1"],
    ],
)
def test_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    client = _client(*argv)
    assert str(client.http.base_url) == "http://a:1" and _key(client) == "k1"


def test_the_subcommand_value_wins() -> None:
    client = _client("--url", "http://top:1", "--api-key", "top", "models", "list",
                     "--url", "http://sub:2", "--api-key", "sub")  # fmt: skip
    assert str(client.http.base_url) == "http://sub:2" and _key(client) == "sub"


def test_defaults_come_from_the_environment_then_admin_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "admin.key").write_text("from-file\n")
    client = _client("--data-dir", str(tmp_path), "scores")
    assert str(client.http.base_url) == "http://127.0.0.1:8000" and _key(client) == "from-file"
    monkeypatch.setenv("IIMM_URL", "http://env:3")
    monkeypatch.setenv("IIMM_API_KEY", "env-key")
    client = _client("jobs", "list")
    assert str(client.http.base_url) == "http://env:3" and _key(client) == "env-key"


def test_serve_takes_data_dir_on_either_side() -> None:
    parser = build_parser()
    assert parser.parse_args(["--data-dir", "/d1", "serve"]).data_dir == "/d1"
    assert parser.parse_args(["--data-dir", "/d1", "serve", "--data-dir", "/d2"]).data_dir == "/d2"
    assert getattr(parser.parse_args(["serve"]), "data_dir", None) is None


def test_data_dir_reaches_commands_that_read_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`iimm --data-dir D db upgrade` migrates the embedded database in D (and writes the
    first admin key there), as `iimm db upgrade --data-dir`-less runs with IIMM_DATA_DIR do."""
    from app.config import get_settings
    from iimm_cli import main

    monkeypatch.setenv("IIMM_DATA_DIR", "/nonexistent-unused")  # restored after the test
    get_settings.cache_clear()
    try:
        assert main(["--data-dir", str(tmp_path), "db", "upgrade"]) == 0
    finally:
        get_settings.cache_clear()
    assert (tmp_path / "admin.key").is_file() and str(tmp_path) in capsys.readouterr().out
