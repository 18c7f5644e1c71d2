"""What the product predicts, end to end: the reference model on a reduced reference suite.

The demo's loop (`iimm_cli.demo_loop`) runs through the REST API against the embedded
service with one worker, fixed seeds, CPU. What is true is asserted (zero-shot above chance
on seen concepts and near chance on never-captioned ones, fine-tuning raises in-domain
accuracy, G and the out-of-domain change and the predictors' statistics equal their
definitions recomputed from the stored numbers, CPU runs are deterministic); the IIMM slope
is printed, not asserted (docs/reference-model.md reports it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from iimm_cli.client import ApiClient
from iimm_cli.demo_loop import LoopConfig, LoopResult, run_loop
from iimm_cli.demo_report import print_report, slope_interval
from tests.service.conftest import SharedStacks
from tests.service.stack import Stack
from workers.ml.reference.suite import TASKS

CFG = LoopConfig(
    per_class=40, max_steps=150, batch_size=32, lr=1e-3, bootstrap=20,
    train_tasks=("colours", "letters", "counts", "noisy-shapes", "handwritten-digits"),
    held_out_tasks=("orientations", "positions"),
)  # fmt: skip
SEEN, UNCAPTIONED = ("colours", "orientations"), ("letters", "counts", "positions")


@pytest.fixture(scope="module")
def stack(shared_stacks: SharedStacks) -> Stack:
    """The embedded stack with one worker users start with: the process's shared one (the
    loop works in a project of its own)."""
    return shared_stacks.get("embedded")


@pytest.fixture(scope="module")
def loop(stack: Stack, workdir: Path) -> tuple[ApiClient, LoopResult]:
    client = ApiClient(stack.url, stack.new_key("reference-e2e"))
    result = run_loop(client, Path(tempfile.mkdtemp(dir=workdir)), CFG, log=lambda _: None)
    print_report(result)  # the IIMM slope and the rest, for the log (not asserted)
    return client, result


def _chance(task: str) -> float:
    return 1 / len(TASKS[task].classes)


def test_zero_shot_knows_what_was_captioned_only(loop: tuple[ApiClient, LoopResult]) -> None:
    _, result = loop
    acc = {t: doc["zero_shot_accuracy"] for t, doc in result.assessments.items()}
    for task in SEEN:
        assert acc[task] >= _chance(task) + 0.4, (task, acc[task])
    for task in UNCAPTIONED:
        assert abs(acc[task] - _chance(task)) <= 0.25, (task, acc[task])


def test_fine_tuning_raises_in_domain_accuracy(loop: tuple[ApiClient, LoopResult]) -> None:
    _, result = loop
    m = result.matrix
    rise = {}
    for row in m["rows"]:
        d = row["train_dataset_id"]
        if not row["flag"]:  # flagged rows have no error left to learn
            rise[d] = row["accuracies"][d] - m["zero_shot"][d]
    assert rise[result.datasets["letters"]] > 0.2, rise  # never captioned: all to learn
    assert np.mean(list(rise.values())) > 0.0, rise


def test_gain_and_ood_change_are_their_definitions(loop: tuple[ApiClient, LoopResult]) -> None:
    _, result = loop
    m = result.matrix
    assert len(m["rows"]) == len(CFG.train_tasks) + len(CFG.held_out_tasks)
    for row in m["rows"]:
        t, acc, zs = row["train_dataset_id"], row["accuracies"], m["zero_shot"]
        if zs[t] < 1:
            assert row["gain"] == pytest.approx((acc[t] - zs[t]) / (1 - zs[t]), abs=1e-12)
        else:  # no error left to gain on: G is undefined
            assert row["gain"] is None
        others = [acc[j] - zs[j] for j in acc if j != t]
        assert row["ood_change"] == pytest.approx(np.mean(others), abs=1e-12)
        assert (row["flag"] is not None) == (1 - zs[t] < 0.05)


def _points(result: LoopResult, feature: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    m, p = result.first_matrix, result.predictors[(feature, target)]
    rows = {r["train_dataset_id"]: r for r in m["rows"]}
    ids = {doc: name for name, doc in result.datasets.items()}
    key = "zero_shot_accuracy" if feature == "zero_shot_accuracy" else None
    xs = [result.assessments[ids[d]][key] if key else result.assessments[ids[d]]["iimm"]["value"]
          for d in p["datasets"]]  # fmt: skip
    ys = [rows[d][target] for d in p["datasets"]]
    assert [pt["x"] for pt in p["points"]] == pytest.approx(xs, abs=1e-12)
    return np.asarray(xs), np.asarray(ys)


@pytest.mark.parametrize("feature", ["iimm", "zero_shot_accuracy"])
@pytest.mark.parametrize("target", ["gain", "ood_change"])
def test_predictors_are_scipys_regression(
    loop: tuple[ApiClient, LoopResult], feature: str, target: str
) -> None:
    _, result = loop
    p = result.predictors[(feature, target)]
    xs, ys = _points(result, feature, target)
    want = stats.linregress(xs, ys)
    assert p["slope"] == pytest.approx(want.slope, rel=1e-9, abs=1e-12)
    assert p["slope_se"] == pytest.approx(want.stderr, rel=1e-9, abs=1e-12)
    assert p["slope_pvalue"] == pytest.approx(want.pvalue, rel=1e-9, abs=1e-12)
    assert p["pearson_r"] == pytest.approx(want.rvalue, rel=1e-9, abs=1e-12)
    t = stats.t.ppf(0.975, len(xs) - 2)
    lo, hi = slope_interval(p)
    assert (lo, hi) == pytest.approx((want.slope - t * want.stderr, want.slope + t * want.stderr))
    resid = ys - (want.intercept + want.slope * xs)
    s = np.sqrt(resid @ resid / (len(xs) - 2))
    for task, per in result.predictions.items():  # the 95% prediction interval of a new x
        pred = per[f"{feature}:{target}"]
        x0 = pred["feature_value"]
        se = s * np.sqrt(1 + 1 / len(xs) + (x0 - xs.mean()) ** 2 / ((xs - xs.mean()) ** 2).sum())
        y0 = want.intercept + want.slope * x0
        got = pred["prediction"]
        assert got["value"] == pytest.approx(y0, rel=1e-9, abs=1e-12), task
        assert (got["lower"], got["upper"]) == pytest.approx((y0 - t * se, y0 + t * se), rel=1e-9)


def test_cpu_runs_are_deterministic(loop: tuple[ApiClient, LoopResult]) -> None:
    client, result = loop
    task = "letters"
    body = {"type": "finetune", "model_id": result.model["id"],
            "dataset_id": result.datasets[task], "method": "full",
            "hyperparameters": CFG.hyperparameters()}  # fmt: skip
    job = client.wait_job(client.request("POST", "/v1/jobs", json=body)["id"], timeout=900)
    assert job["status"] == "succeeded", job
    again = client.request("GET", "/v1/matrices", params={"base_model_id": result.model["id"],
                                                           "method": "full"})  # fmt: skip
    d = result.datasets[task]
    before = next(r for r in result.matrix["rows"] if r["train_dataset_id"] == d)
    after = next(r for r in again["rows"] if r["train_dataset_id"] == d)
    assert after["finetuned_model_id"] != before["finetuned_model_id"]
    assert after["accuracies"] == before["accuracies"]
