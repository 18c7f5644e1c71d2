"""Interrupted runs resume to the same bytes; batch-aligned shards merge to the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.imagedata import DatasetLayout
from workers.ml.embed import batch_grid, embed_dataset
from workers.ml.models import LoadedModel
from workers.ml.result import EmbedResult
from workers.ml.shards import merge_shards, plan_shards

ARRAYS = ("images.npy", "topk.npy", "labels.npy", "index.npy", "texts.npy")


class InterruptError(Exception):
    """Raised by the progress callback to simulate a worker dying mid-run."""


@pytest.fixture(scope="module")
def whole(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path_factory: pytest.TempPathFactory
) -> EmbedResult:
    out = tmp_path_factory.mktemp("whole")
    return embed_dataset(
        tiny_model, shapes, split="train", out_dir=out, batch_size=4, num_workers=0
    )


def _same_bytes(a: Path, b: Path) -> None:
    for name in ARRAYS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _same_stats(a: EmbedResult, b: EmbedResult) -> None:
    sa, sb = a.stats(), b.stats()
    assert np.array_equal(sa.counts, sb.counts)
    assert np.allclose(sa.class_sums, sb.class_sums, rtol=1e-12, atol=1e-12)
    assert sa.sq_norms == pytest.approx(sb.sq_norms, rel=1e-12)
    for key, value in a.measures.items():
        assert b.measures[key] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_batch_grid_is_aligned() -> None:
    assert batch_grid(0, 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_grid(6, 13, 4) == [(6, 8), (8, 12), (12, 13)]
    assert plan_shards(36, 3, 4) == [(0, 12), (12, 24), (24, 36)]
    assert plan_shards(10, 4, 4) == [(0, 4), (4, 8), (8, 10)]


def test_resume_after_interruption_equals_uninterrupted(
    whole: EmbedResult, tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    calls: list[float] = []

    def die_after_three(fraction: float, stage: str, **units: object) -> None:
        if stage == "embedding":
            calls.append(fraction)
            if len(calls) == 3:
                raise InterruptError

    with pytest.raises(InterruptError):
        embed_dataset(
            tiny_model,
            shapes,
            split="train",
            out_dir=tmp_path,
            batch_size=4,
            num_workers=0,
            progress=die_after_three,
            checkpoint_every_s=0.0,
        )
    state = json.loads((tmp_path / "progress.json").read_text())
    assert state["batches_done"] == 3 and not (tmp_path / "meta.json").exists()
    seen: list[float] = []
    resumed = embed_dataset(
        tiny_model,
        shapes,
        split="train",
        out_dir=tmp_path,
        batch_size=4,
        num_workers=0,
        progress=lambda f, s, **_: seen.append(f) if s == "embedding" else None,
    )
    assert seen[0] == pytest.approx(4 / 9) and len(seen) == 6  # only the remaining batches ran
    assert resumed.timing is not None and resumed.timing["batches"] == 6
    assert resumed.timing["images"] == len(shapes.split("train")) - 3 * 4
    _same_bytes(whole.out_dir, tmp_path)
    _same_stats(whole, resumed)
    assert resumed.zero_shot == whole.zero_shot


def test_no_resume_starts_over(
    whole: EmbedResult, tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    seen: list[float] = []
    embed_dataset(
        tiny_model,
        shapes,
        split="train",
        out_dir=tmp_path,
        batch_size=4,
        num_workers=0,
        resume=False,
        progress=lambda f, s, **_: seen.append(f) if s == "embedding" else None,
    )
    assert len(seen) == 9
    _same_bytes(whole.out_dir, tmp_path)


def test_shards_merge_to_the_whole_run(
    whole: EmbedResult, tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    dirs = []
    for i, shard in enumerate(plan_shards(len(shapes.split("train")), 3, 4)):
        dirs.append(tmp_path / f"shard{i}")
        embed_dataset(
            tiny_model,
            shapes,
            split="train",
            out_dir=dirs[-1],
            batch_size=4,
            num_workers=0,
            shard=shard,
        )
    merged = merge_shards(list(reversed(dirs)), tmp_path / "merged")
    _same_bytes(whole.out_dir, merged.out_dir)
    # meta.json is the whole run's, but for where it came from: rows, not server folders
    assert {k: v for k, v in merged.meta.items() if k != "merged_from"} == whole.meta
    assert merged.meta["merged_from"] == [
        {"index": i, "rows": list(shard)}
        for i, shard in enumerate(plan_shards(len(shapes.split("train")), 3, 4))
    ]
    # the float64 sums are re-added in the whole run's batch order: the same bytes
    assert (merged.out_dir / "stats.json").read_bytes() == (
        whole.out_dir / "stats.json"
    ).read_bytes()
    assert merged.measures == whole.measures
    assert merged.zero_shot == whole.zero_shot and merged.n == whole.n
    assert merged.meta["run_key"] == whole.meta["run_key"]
    # the merged directory is a completed whole run: embedding into it again reuses it
    again = embed_dataset(
        tiny_model, shapes, split="train", out_dir=merged.out_dir, batch_size=4, num_workers=0,
        progress=lambda *_, **__: pytest.fail("a completed run was embedded again"),
    )  # fmt: skip
    assert again.meta == merged.meta


def test_merge_refuses_gaps_and_foreign_shards(
    tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    a = tmp_path / "a"
    embed_dataset(
        tiny_model, shapes, split="train", out_dir=a, batch_size=4, num_workers=0, shard=(0, 8)
    )
    with pytest.raises(ValueError, match=r"cover rows 0\.\.8"):
        merge_shards([a], tmp_path / "m")
    b = tmp_path / "b"
    embed_dataset(
        tiny_model,
        shapes,
        split="train",
        out_dir=b,
        batch_size=4,
        num_workers=0,
        shard=(8, 36),
        prompts=["a drawing of a {c}."],
    )
    with pytest.raises(ValueError, match="templates"):
        merge_shards([a, b], tmp_path / "m")


def test_merged_statistics_are_the_whole_runs_bytes(
    tiny_model: LoadedModel, tmp_path: Path
) -> None:
    from app.imagedata import open_dataset
    from workers.ml.synth import generate_task

    # 30 images a class: classes straddle the shard boundary, where summation order shows
    layout = open_dataset(generate_task("shapes", tmp_path / "d", per_class=30, seed=0), seed=0)
    kw = {"split": "train", "batch_size": 4, "num_workers": 0}
    whole = embed_dataset(tiny_model, layout, out_dir=tmp_path / "whole", **kw)
    plan = plan_shards(len(layout.split("train")), 2, 4)
    parts = [
        embed_dataset(tiny_model, layout, out_dir=tmp_path / f"s{i}", shard=shard, **kw)
        for i, shard in enumerate(plan)
    ]
    # the shards' own float64 sums added: right up to the last bits, not the same bytes
    added = parts[0].stats().merge(parts[1].stats())
    assert not np.array_equal(added.class_sums, whole.stats().class_sums)
    assert np.allclose(added.class_sums, whole.stats().class_sums, rtol=1e-12, atol=1e-12)
    merged = merge_shards([p.out_dir for p in parts], tmp_path / "merged")
    assert (merged.out_dir / "stats.json").read_bytes() == (
        whole.out_dir / "stats.json"
    ).read_bytes()
    assert merged.measures == whole.measures


def test_merged_warnings_judge_the_whole_split(tiny_model: LoadedModel, tmp_path: Path) -> None:
    """Classes short of images are named from the merged rows, as the single run names them;
    a shard, which holds part of the split, names none (its rows lack classes others hold)."""
    from app.imagedata import open_dataset
    from workers.ml.synth import generate_task

    # 2 images a class: 1 in train, so the whole split has every class short of 2 images
    layout = open_dataset(generate_task("shapes", tmp_path / "d", per_class=2, seed=0), seed=0)
    kw = {"split": "train", "batch_size": 2, "num_workers": 0}
    whole = embed_dataset(tiny_model, layout, out_dir=tmp_path / "whole", **kw)
    short = f"{layout.num_classes} classes have fewer than 2 images in split 'train'"
    assert [w for w in whole.meta["warnings"] if short in w], whole.meta["warnings"]
    plan = plan_shards(len(layout.split("train")), 2, 2)
    parts = [
        embed_dataset(tiny_model, layout, out_dir=tmp_path / f"s{i}", shard=shard, **kw)
        for i, shard in enumerate(plan)
    ]
    assert all("fewer than 2 images" not in w for p in parts for w in p.meta["warnings"])
    merged = merge_shards([p.out_dir for p in parts], tmp_path / "merged", job_ids=["j0", "j1"])
    assert merged.meta["warnings"] == whole.meta["warnings"]
    assert [m["job_id"] for m in merged.meta["merged_from"]] == ["j0", "j1"]
    with pytest.raises(ValueError, match="1 job ids for 2 shards"):
        merge_shards([p.out_dir for p in parts], tmp_path / "m2", job_ids=["j0"])
