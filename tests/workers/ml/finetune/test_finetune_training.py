"""Training: learning on a generated task, bit-identical resumption, the grid, bad requests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import fsspec
import pytest
import torch
from fsspec.implementations.dirfs import DirFileSystem
from torch import nn
from torch.utils.data import DataLoader

from tests.workers.ml.finetune.support import CLASS_NAMES, TEMPLATES, colour_task
from workers.ml.finetune import (
    PAPER_GRID,
    CheckpointMismatchError,
    FinetuneConfig,
    FinetuneError,
    GridSpec,
    GridTooLargeError,
    InvalidConfigError,
    UnknownMethodError,
    UnsupportedArchitectureError,
    evaluate,
    finetune,
    load_finetuned,
)
from workers.ml.finetune.grid import grid_points


class WorkerKilledError(Exception):
    """Stands in for a worker killed mid-epoch."""


def _run(model: nn.Module, tokenizer, config: FinetuneConfig, store, **kwargs):
    return finetune(
        model, tokenizer, colour_task(32, 0), colour_task(16, 7), CLASS_NAMES, TEMPLATES,
        config, checkpoint_dir=store, device="cpu", **kwargs,
    )  # fmt: skip


def test_full_finetuning_learns_a_generated_task(make_model, tokenizer, tmp_path) -> None:
    test_set = colour_task(32, 11)
    zero_shot = evaluate(make_model(), tokenizer, test_set, CLASS_NAMES, TEMPLATES, device="cpu")
    config = FinetuneConfig(method="full", epochs=3, batch_size=8, lr=0.02)
    result = finetune(
        make_model(), tokenizer, colour_task(64, 0), colour_task(16, 7), CLASS_NAMES, TEMPLATES,
        config, checkpoint_dir=tmp_path, device="cpu",
    )  # fmt: skip
    tuned = evaluate(result.model, tokenizer, test_set, CLASS_NAMES, TEMPLATES, device="cpu")
    assert tuned.top1 >= 0.85
    assert tuned.top1 >= zero_shot.top1 + 0.5
    assert result.best_val_acc == max(r.val_acc for r in result.history)
    assert result.history[result.best_epoch - 1].val_acc == result.best_val_acc


@pytest.mark.parametrize("method", ["full", "adapter"])
def test_interrupted_run_resumes_to_bit_identical_weights(
    method: str, make_model: Callable[..., nn.Module], tokenizer, tmp_path
) -> None:
    config = FinetuneConfig(method=method, epochs=3, batch_size=16, lr=0.05, schedule="cosine")
    reference = _run(make_model(), tokenizer, config, tmp_path / "reference")

    def kill_in_second_epoch(epoch: int, step: int, loss: float, val_acc: float | None) -> None:
        if epoch == 2 and step == 3:
            raise WorkerKilledError

    with pytest.raises(WorkerKilledError):
        _run(make_model(), tokenizer, config, tmp_path / "resumed", progress=kill_in_second_epoch)
    resumed = _run(make_model(), tokenizer, config, tmp_path / "resumed")
    assert resumed.resumed_from_epoch == 1
    assert resumed.history == reference.history
    expected = reference.model.trainable_state()
    actual = resumed.model.trainable_state()
    assert set(actual) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


def test_resume_through_an_fsspec_store_and_reload(make_model, tokenizer) -> None:
    store = DirFileSystem(path="/ft-run", fs=fsspec.filesystem("memory"))
    config = FinetuneConfig(method="lora", epochs=2, batch_size=16, lr=0.05, lora_rank=2)
    calls: list[tuple[int, int, float, float | None]] = []
    first = _run(make_model(), tokenizer, config, store, progress=lambda *a: calls.append(a))
    assert [c[0] for c in calls if c[3] is not None] == [1, 2]  # one epoch report each
    assert len(calls) == 2 * 2 + 2  # two steps per epoch, plus the epoch reports
    again = _run(make_model(), tokenizer, config, store)  # finished: nothing left to train
    assert again.resumed_from_epoch == 2
    reloaded = load_finetuned(make_model(), store)
    test_set = colour_task(16, 5)
    scores = [
        evaluate(m, tokenizer, test_set, CLASS_NAMES, TEMPLATES, device="cpu")
        for m in (first.model, reloaded)
    ]
    assert scores[0] == scores[1]
    with pytest.raises(CheckpointMismatchError, match="config"):
        _run(make_model(), tokenizer, dataclasses.replace(config, lr=0.01), store)


def test_grid_picks_the_best_validation_point(make_model, tokenizer, tmp_path) -> None:
    config = FinetuneConfig(
        method="attention", epochs=2, batch_size=16, grid=GridSpec(lr=[1e-7, 0.1])
    )
    result = _run(make_model(), tokenizer, config, tmp_path)
    assert result.grid is not None and len(result.grid) == 2
    accs = [p.best_val_acc for p in result.grid]
    best = max(range(2), key=lambda i: (accs[i], -i))
    assert accs[1] > accs[0]
    assert result.config.lr == result.grid[best].config.lr == 0.1
    assert result.best_val_acc == accs[best]
    assert (tmp_path / "grid" / "000" / "final.pt").exists()
    reloaded = load_finetuned(make_model(), tmp_path)  # top-level final.pt is the best point
    expected = result.model.trainable_state()
    for name, tensor in reloaded.trainable_state().items():
        assert torch.equal(tensor, expected[name])


def test_grid_points_follow_the_method_and_are_bounded() -> None:
    lora = FinetuneConfig(method="lora", grid=GridSpec.paper())
    assert len(grid_points(lora)) == 4 * 3 * 4 == 48
    assert {p.lora_rank for p in grid_points(lora)} == set(PAPER_GRID["lora_rank"])
    assert len(grid_points(FinetuneConfig(method="bitfit", grid=GridSpec.paper()))) == 12
    with pytest.raises(GridTooLargeError, match="48 points"):
        grid_points(dataclasses.replace(lora, max_grid_points=20))


def test_bad_requests_raise_clear_errors(make_model, tokenizer, tmp_path) -> None:
    with pytest.raises(UnknownMethodError, match=r"valid methods: .*'lora'") as info:
        _run(make_model(), tokenizer, FinetuneConfig(method="dora"), tmp_path / "a")
    assert isinstance(info.value, ValueError) and isinstance(info.value, FinetuneError)
    too_big = FinetuneConfig(method="lora", grid=GridSpec.paper(), max_grid_points=8)
    with pytest.raises(GridTooLargeError):
        _run(make_model(), tokenizer, too_big, tmp_path / "b")
    with pytest.raises(InvalidConfigError, match="lr"):
        _run(make_model(), tokenizer, FinetuneConfig(lr=-1.0), tmp_path / "c")
    no_val = FinetuneConfig(grid=GridSpec(lr=[0.1, 0.01]))
    with pytest.raises(FinetuneError, match="validation"):
        finetune(
            make_model(), tokenizer, colour_task(8, 0), None, CLASS_NAMES, TEMPLATES, no_val,
            checkpoint_dir=tmp_path / "d", device="cpu",
        )  # fmt: skip
    with pytest.raises(UnsupportedArchitectureError, match="image tower ModifiedResNet") as info:
        _run(make_model("ft-tiny-rn"), tokenizer, FinetuneConfig(method="lora"), tmp_path / "e")
    assert isinstance(info.value, FinetuneError)
    assert not (tmp_path / "a").exists()


def test_dataloaders_are_accepted_and_reshuffled_by_the_seed(make_model, tokenizer, tmp_path):
    config = FinetuneConfig(method="bitfit", epochs=1, batch_size=8, lr=0.05)
    train, val = colour_task(32, 0), colour_task(16, 7)
    sources = [
        ("datasets", train, val),
        ("loaders", DataLoader(train, batch_size=3), DataLoader(val, batch_size=5)),
    ]
    runs = []
    for name, train_data, val_data in sources:
        result = finetune(
            make_model(), tokenizer, train_data, val_data, CLASS_NAMES, TEMPLATES, config,
            checkpoint_dir=tmp_path / name, device="cpu",
        )  # fmt: skip
        runs.append(result)
    expected, actual = (r.model.trainable_state() for r in runs)
    assert all(torch.equal(actual[n], t) for n, t in expected.items())
    assert runs[0].history == runs[1].history


def test_config_json_round_trip() -> None:
    config = FinetuneConfig(method="lora", lora_rank=4, schedule="cosine", grid=GridSpec.paper())
    assert FinetuneConfig.from_json(config.to_json()) == config
    with pytest.raises(InvalidConfigError, match="unknown config keys"):
        FinetuneConfig.from_dict({"method": "full", "learning_rate": 0.1})


def test_max_steps_is_a_budget_in_steps_ending_mid_epoch(make_model, tokenizer, tmp_path) -> None:
    # 32 training images in batches of 8: 4 steps an epoch, so 6 steps end mid-epoch 2
    config = FinetuneConfig(method="full", epochs=30, max_steps=6, batch_size=8, lr=0.05)
    result = _run(make_model(), tokenizer, config, tmp_path / "steps")
    assert [(r.epoch, r.step) for r in result.history] == [(1, 4), (2, 6)]
    # a budget of one epoch's steps is that epoch, bit for bit
    one_epoch = _run(make_model(), tokenizer, dataclasses.replace(config, max_steps=None, epochs=1),
                     tmp_path / "epoch")  # fmt: skip
    four = _run(make_model(), tokenizer, dataclasses.replace(config, max_steps=4), tmp_path / "4")
    for name, tensor in one_epoch.model.trainable_state().items():
        assert torch.equal(four.model.trainable_state()[name], tensor), name
    assert config.total_epochs(4) == 2 and config.total_steps(4) == 6
    with pytest.raises(InvalidConfigError, match="max_steps"):
        dataclasses.replace(config, max_steps=0).validate()


def test_cpu_threads_sets_and_restores_the_thread_count() -> None:
    from workers.ml.finetune.runtime import cpu_threads

    before = torch.get_num_threads()
    wanted = before + 1  # differs from what the process runs with
    with cpu_threads(torch.device("cpu"), wanted):
        assert torch.get_num_threads() == wanted
    assert torch.get_num_threads() == before
    with cpu_threads(torch.device("cpu"), 0):  # 0: torch's own default, untouched
        assert torch.get_num_threads() == before
