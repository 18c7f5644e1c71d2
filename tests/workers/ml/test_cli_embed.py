"""`iimm embed`: writes the run directory; user errors exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iimm_cli import main

from .conftest import TINY_JSON


def test_cli_embed_writes_the_run(
    shapes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "embed",
            "--model",
            str(TINY_JSON),
            "--dataset",
            str(shapes_dir),
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--quiet",
            "--prompt",
            "a drawing of a {c}.",
            "--prompt",
            "a {c} shape.",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["timing"]["images"] == 12 and printed["timing"]["batches"] == 2
    assert printed["n"] == 12 and set(printed["zero_shot"]) == {
        "top1",
        "top5",
        "mean_per_class_recall",
    }
    for name in ("images.npy", "labels.npy", "texts.npy", "meta.json", "stats.json"):
        assert (out / name).is_file()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["templates"] == ["a drawing of a {c}.", "a {c} shape."]
    assert np.load(out / "images.npy").shape == (12, 32)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "ViT-B-32"], "names no weights"),
        (["--split", "nope"], "no split 'nope'"),
        (["--shard", "1-2"], "START:STOP"),
    ],
)
def test_cli_embed_user_errors(
    shapes_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    base = {"--model": str(TINY_JSON), "--dataset": str(shapes_dir), "--out": str(tmp_path / "o")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["embed", "--quiet", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_iimm_measures_runs_on_the_embed_output(
    shapes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["embed", "--model", str(TINY_JSON), "--dataset", str(shapes_dir), "--out", str(out)]
    assert main([*argv, "--workers", "0", "--quiet"]) == 0
    embedded = json.loads(capsys.readouterr().out)
    files = [f"--{n}={out / f'{n}.npy'}" for n in ("images", "texts", "labels")]
    assert main(["measures", *files, "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["measures"]["iimm"] == pytest.approx(embedded["measures"]["iimm"], abs=1e-9)
