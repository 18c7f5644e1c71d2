"""Predictors, predictions, comparisons and rankings over real HTTP, on both stacks.

The fine-tuning ground truth (scores, fine-tuned models, evaluations) is written straight
into the stack's database, so every number is planted; the expected fits are computed here
with `fit_linear`/`predict` from what the API reports as stored (`/v1/scores`) and from the
planted accuracies (G by its formula), independently of the service's own code paths.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.service import hash_key
from app.db import make_engine, make_sessionmaker, new_id, session_scope
from app.measures.prediction import (
    Candidate,
    compare_measures,
    fit_auto,
    fit_linear,
    implied_accuracy_interval,
    predict,
    rank_candidates,
)
from app.models import ApiKey, Dataset, Evaluation, FinetunedModel, Score
from tests.service.stack import ROOT, Stack, wait_job
from tests.service.test_api import add_tiny, assert_problem, upload

MEASURES = ("iimm", "inter_modal", "modality_gap")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def db(stack: Stack) -> Iterator[Session]:
    """A transaction on the stack's own database."""
    url = stack.env.get("IIMM_DATABASE_URL") or (
        f"sqlite:///{(Path(stack.env['IIMM_DATA_DIR']) / 'iimm.db').resolve()}"
    )
    engine = make_engine(url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


@dataclass
class Seed:
    """A project with a base model and planted tasks."""

    key: str
    project_id: str
    model_id: str
    datasets: list[str] = field(default_factory=list)
    zero_shot: dict[str, float] = field(default_factory=dict)
    finetuned: dict[str, dict[str, float]] = field(default_factory=dict)

    def gain(self, d: str) -> float:
        """G of the task fine-tuned on `d`, from the planted accuracies."""
        return (self.finetuned[d][d] - self.zero_shot[d]) / (1 - self.zero_shot[d])

    def ood(self, d: str) -> float:
        """Mean change on the other tasks of the model fine-tuned on `d`."""
        others = [j for j in self.finetuned[d] if j != d]
        return float(np.mean([self.finetuned[d][j] - self.zero_shot[j] for j in others]))


def new_project(stack: Stack) -> tuple[str, str, httpx.Client]:
    key = stack.new_key(_name("pred"))
    with db(stack) as s:
        project_id = s.scalar(select(ApiKey.project_id).where(ApiKey.key_hash == hash_key(key)))
    assert project_id is not None
    return key, project_id, stack.client(key)


def add_dataset(s: Session, project_id: str) -> str:
    row = Dataset(
        id=new_id("dst"), project_id=project_id, name=_name("planted"), format="imagefolder",
        source="uri", uri="file:///nowhere", class_names=["a", "b"], splits={"test": 4},
        fingerprint=uuid.uuid4().hex, size_bytes=0, info={},
    )  # fmt: skip
    s.add(row)
    s.flush()
    return row.id


def add_scores(
    s: Session, seed: Seed, d: str, values: dict[str, float | None], acc_zs: float | None
) -> None:
    for measure, value in values.items():
        s.add(Score(
            id=new_id("scr"), project_id=seed.project_id, model_id=seed.model_id, dataset_id=d,
            split="test", measure=measure, value=value, n=40, zero_shot_accuracy=acc_zs,
            ci_low=None if value is None else value - 0.01,
            ci_high=None if value is None else value + 0.01,
        ))  # fmt: skip


def add_finetuned(s: Session, seed: Seed, train: str, accs: dict[str, float], method: str) -> None:
    ftm = FinetunedModel(
        id=new_id("ftm"), project_id=seed.project_id, base_model_id=seed.model_id,
        train_dataset_id=train, method=method, hyperparameters={}, status="ready", metrics={},
    )  # fmt: skip
    s.add(ftm)
    s.flush()
    for d, acc in accs.items():
        s.add(Evaluation(
            id=new_id("evl"), project_id=seed.project_id, base_model_id=seed.model_id,
            finetuned_model_id=ftm.id, model_ref=ftm.id, dataset_id=d, split="test", top1=acc,
            n=4, per_class_recall=[],
        ))  # fmt: skip
    seed.finetuned[train] = accs


def add_zero_shot(s: Session, seed: Seed, d: str, acc: float) -> None:
    s.add(Evaluation(
        id=new_id("evl"), project_id=seed.project_id, base_model_id=seed.model_id,
        model_ref=seed.model_id, dataset_id=d, split="test", top1=acc, n=4, per_class_recall=[],
    ))  # fmt: skip
    seed.zero_shot[d] = acc


def plant(
    stack: Stack,
    c: httpx.Client,
    key: str,
    project_id: str,
    iimm: list[float | None],
    *,
    tuned: int | None = None,
    method: str = "full",
    seed_no: int = 0,
    gain_of: Callable[[float], float] = lambda x: 0.1 + 1.4 * x,
    noise: float = 0.03,
) -> Seed:
    """Tasks with IIMM values `iimm`; the first `tuned` are fine-tuned with G ≈ 0.1 + 1.4·IIMM."""
    rng = np.random.default_rng(seed_no)
    seed = Seed(key=key, project_id=project_id, model_id=add_tiny(c)["id"])
    tuned = len(iimm) if tuned is None else tuned
    with db(stack) as s:
        seed.datasets = [add_dataset(s, project_id) for _ in iimm]
        for d, x in zip(seed.datasets, iimm, strict=True):
            acc_zs = round(float(rng.uniform(0.2, 0.5)), 4)
            add_zero_shot(s, seed, d, acc_zs)
            values = {"iimm": x, "inter_modal": None if x is None else x / 2 + rng.normal(0, 0.02),
                      "modality_gap": float(rng.uniform(0.5, 1.5))}  # fmt: skip
            add_scores(s, seed, d, values, acc_zs)
        for i, d in enumerate(seed.datasets[:tuned]):
            gain = gain_of(iimm[i] or 0.3) + rng.normal(0, noise)
            accs = {j: seed.zero_shot[j] - float(rng.uniform(0.0, 0.1)) for j in seed.datasets}
            accs[d] = seed.zero_shot[d] + gain * (1 - seed.zero_shot[d])
            add_finetuned(s, seed, d, accs, method)
    return seed


def stored_feature(c: httpx.Client, seed: Seed, measure: str = "iimm") -> dict[str, float | None]:
    items = c.get("/v1/scores", params={"model_id": seed.model_id, "measure": measure}).json()
    return {s["dataset_id"]: s["value"] for s in items["items"]}


def expected_fit(c: httpx.Client, seed: Seed, datasets: list[str], target: str = "gain") -> Any:
    x = stored_feature(c, seed)
    ys = [seed.gain(d) if target == "gain" else seed.ood(d) for d in datasets]
    return fit_linear([x[d] for d in datasets], ys, names=datasets)


def _close(got: float | None, want: float) -> None:
    if not math.isfinite(want):
        assert got is None
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def check_stats(body: dict[str, Any], fit: Any) -> None:
    for key in (
        "slope",
        "intercept",
        "slope_se",
        "intercept_se",
        "r_squared",
        "slope_pvalue",
        "pearson_r",
        "spearman_rho",
        "spearman_pvalue",
        "loo_rmse",
        "residual_sd",
    ):
        _close(body[key], getattr(fit, key))  # fmt: skip
    assert body["n"] == fit.n and body["model_form"] == "linear"
    assert body["fitted_range"] == {
        "min": pytest.approx(fit.x_min),
        "max": pytest.approx(fit.x_max),
    }


@pytest.fixture(scope="module")
def planted(stack: Stack) -> Iterator[tuple[Seed, httpx.Client]]:
    """Six tasks: five fine-tuned with full (one IIMM undefined), one held out (not tuned)."""
    key, project_id, client = new_project(stack)
    seed = plant(stack, client, key, project_id, [0.2, 0.35, 0.3, 0.5, None, 0.45], tuned=5)
    try:
        yield seed, client
    finally:
        client.close()


def test_fit_get_list_delete(planted: tuple[Seed, httpx.Client]) -> None:
    seed, c = planted
    resp = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"/v1/predictors/{body['id']}"
    used = sorted(seed.datasets[:4])
    assert body["datasets"] == used and body["feature"] == "iimm" and body["target"] == "gain"
    assert [s["dataset_id"] for s in body["skipped"]] == [seed.datasets[4]]
    assert "undefined" in body["skipped"][0]["reason"]
    check_stats(body, expected_fit(c, seed, used))
    assert c.get(f"/v1/predictors/{body['id']}").json() == body
    keyed = {"Idempotency-Key": _name("k")}
    req = {"base_model_id": seed.model_id, "method": "full", "target": "ood_change",
           "piecewise": "never"}  # fmt: skip
    ood = c.post("/v1/predictors", json=req, headers=keyed)
    again = c.post("/v1/predictors", json=req, headers=keyed)
    assert again.json()["id"] == ood.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert_problem(c.post("/v1/predictors", json={**req, "target": "gain"}, headers=keyed), 422)
    assert ood.status_code == 201, ood.text
    check_stats(ood.json(), expected_fit(c, seed, used, target="ood_change"))
    zs = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full",
                                        "feature": "zero_shot_accuracy"})  # fmt: skip
    assert zs.status_code == 201 and zs.json()["n"] == 5, zs.text
    page1 = c.get("/v1/predictors", params={"limit": 2}).json()
    page2 = c.get("/v1/predictors", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    ids = [p["id"] for p in page1["items"] + page2["items"]]
    assert ids == [zs.json()["id"], ood.json()["id"], body["id"]] and page2["next_cursor"] is None
    only = c.get("/v1/predictors", params={"target": "ood_change"}).json()["items"]
    assert [p["id"] for p in only] == [ood.json()["id"]]
    assert c.delete(f"/v1/predictors/{zs.json()['id']}").status_code == 204
    assert_problem(c.get(f"/v1/predictors/{zs.json()['id']}"), 404)
    assert_problem(c.delete(f"/v1/predictors/{zs.json()['id']}"), 404)


def test_the_same_fit_is_one_predictor(planted: tuple[Seed, httpx.Client]) -> None:
    """Fitting the same points again returns the stored predictor (200), however the request
    named the datasets; another target is another predictor (201)."""
    seed, c = planted
    body = {"base_model_id": seed.model_id, "method": "full", "feature": "zero_shot_accuracy",
            "target": "ood_change", "piecewise": "never"}  # fmt: skip
    first = c.post("/v1/predictors", json=body)
    assert first.status_code == 201, first.text
    again = c.post("/v1/predictors", json=body)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["location"] == f"/v1/predictors/{first.json()['id']}"
    named = {**body, "dataset_ids": sorted(first.json()["datasets"])}  # the same points
    same = c.post("/v1/predictors", json=named)
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    other = c.post("/v1/predictors", json={**body, "target": "gain"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    items = c.get("/v1/predictors", params={"limit": 200}).json()["items"]
    mine = [p["id"] for p in items if p["feature"] == "zero_shot_accuracy"]
    assert sorted(mine) == sorted([first.json()["id"], other.json()["id"]])


def _gain_predictor(seed: Seed, c: httpx.Client) -> dict[str, Any]:
    body = {"base_model_id": seed.model_id, "method": "full", "piecewise": "never",
            "dataset_ids": seed.datasets[:4]}  # fmt: skip
    resp = c.post("/v1/predictors", json=body)
    assert resp.status_code in (200, 201), resp.text  # 200: an earlier test fitted it
    return resp.json()


def test_predictions(planted: tuple[Seed, httpx.Client]) -> None:
    seed, c = planted
    pred = _gain_predictor(seed, c)
    fit = expected_fit(c, seed, seed.datasets[:4])
    url = f"/v1/predictors/{pred['id']}/predictions"
    raw = c.post(url, json={"feature_value": 0.4, "zero_shot_accuracy": 0.3})
    assert raw.status_code == 200, raw.text
    want = predict(fit, 0.4)
    got = raw.json()
    for k in ("value", "lower", "upper"):
        _close(got["prediction"][k], getattr(want, k))
    acc = implied_accuracy_interval(0.3, want)
    for k in ("value", "lower", "upper"):
        _close(got["finetuned_accuracy"][k], getattr(acc, k))
    assert got["extrapolated"] is False and got["df"] == 2
    far = c.post(url, json={"feature_value": 5.0, "zero_shot_accuracy": 0.3, "level": 0.9}).json()
    assert far["extrapolated"] is True and far["finetuned_accuracy"]["value"] == 1.0
    _close(far["prediction"]["upper"], predict(fit, 5.0, level=0.9).upper)
    held_out = seed.datasets[5]
    by_ds = c.post(url, json={"dataset_id": held_out}).json()
    x = stored_feature(c, seed)[held_out]
    _close(by_ds["prediction"]["value"], predict(fit, x).value)
    _close(by_ds["finetuned_accuracy"]["lower"],
           implied_accuracy_interval(seed.zero_shot[held_out], predict(fit, x)).lower)  # fmt: skip


def test_prediction_errors(stack: Stack, planted: tuple[Seed, httpx.Client]) -> None:
    seed, c = planted
    pred = _gain_predictor(seed, c)
    url = f"/v1/predictors/{pred['id']}/predictions"
    with db(stack) as s:
        unscored = add_dataset(s, seed.project_id)
    resp = c.post(url, json={"dataset_id": unscored})
    assert_problem(resp, 409, "assess", f'"dataset_id": "{unscored}"', seed.model_id)
    assert_problem(c.post(url, json={"dataset_id": seed.datasets[4]}), 422, "undefined")
    assert_problem(c.post(url, json={"dataset_id": "dst_nope"}), 404)
    assert_problem(c.post(url, json={}), 422, "feature_value")
    assert_problem(c.post(url, json={"feature_value": 0.3, "dataset_id": seed.datasets[0]}), 422)
    assert_problem(c.post(url, json={"feature_value": 0.3, "zero_shot_accuracy": 1.5}), 422)
    nan = c.post(
        url, content=b'{"feature_value": NaN}', headers={"content-type": "application/json"}
    )
    assert_problem(nan, 422)
    assert_problem(c.post("/v1/predictors/prd_nope/predictions", json={"feature_value": 1}), 404)


def test_fit_errors(stack: Stack) -> None:
    key, project_id, c = new_project(stack)
    with c:
        two = plant(stack, c, key, project_id, [0.2, 0.4, 0.3], tuned=2)
        resp = c.post("/v1/predictors", json={"base_model_id": two.model_id, "method": "full"})
        assert_problem(resp, 422, "at least 3", "got 2", "1 more fine-tuned task")
        none = c.post("/v1/predictors", json={"base_model_id": two.model_id, "method": "lora"})
        assert_problem(none, 422, "got 0", "3 more fine-tuned tasks")
        flat = plant(stack, c, key, project_id, [0.3, 0.3, 0.3], seed_no=1)
        resp = c.post("/v1/predictors", json={"base_model_id": flat.model_id, "method": "full"})
        assert_problem(resp, 422, "constant")
        nan = plant(stack, c, key, project_id, [0.2, None, 0.3, 0.4], seed_no=2)
        body = {"base_model_id": nan.model_id, "method": "full", "dataset_ids": nan.datasets}
        assert_problem(c.post("/v1/predictors", json=body), 422, nan.datasets[1], "undefined")
        body = {"base_model_id": two.model_id, "method": "full", "dataset_ids": two.datasets}
        assert_problem(c.post("/v1/predictors", json=body), 422, "no fine-tuned row")
        bad = {"base_model_id": two.model_id, "method": "full"}
        assert_problem(c.post("/v1/predictors", json={**bad, "feature": "vibes"}), 422, "vibes")
        assert_problem(c.post("/v1/predictors", json={**bad, "target": "joy"}), 422)
        assert_problem(c.post("/v1/predictors", json={**bad, "method": "magic"}), 422, "magic")
        assert_problem(c.post("/v1/predictors", json={**bad, "piecewise": "maybe"}), 422)
        assert_problem(c.post("/v1/predictors", json={**bad, "dataset_ids": ["dst_x"]}), 404)
        missing = {"base_model_id": "mdl_nope", "method": "full"}
        assert_problem(c.post("/v1/predictors", json=missing), 404)
        assert_problem(c.get("/v1/comparisons", params={**bad, "method": "full"}), 422, "got 2")


def test_comparisons(planted: tuple[Seed, httpx.Client]) -> None:
    seed, c = planted
    resp = c.get("/v1/comparisons", params={"base_model_id": seed.model_id, "method": "full"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    tuned = sorted(seed.datasets[:5])
    assert body["n_tasks"] == 5 and body["datasets"] == tuned
    gain = [seed.gain(d) for d in tuned]
    acc = [seed.finetuned[d][d] for d in tuned]
    by_measure = {m["measure"]: m for m in body["items"]}
    assert set(by_measure) == {*MEASURES, "zero_shot_accuracy"}
    for measure in MEASURES:
        x = stored_feature(c, seed, measure)
        values = [math.nan if x[d] is None else x[d] for d in tuned]
        (want,) = compare_measures({measure: values}, gain, acc, names=tuned)
        got = by_measure[measure]
        for k in (
            "spearman_gain",
            "spearman_gain_pvalue",
            "spearman_accuracy",
            "spearman_accuracy_pvalue",
            "r_squared",
            "slope_pvalue",
        ):
            _close(got[k], getattr(want, k))  # fmt: skip
        assert got["datasets_missing"] == [tuned[i] for i in want.missing]
    assert by_measure["iimm"]["datasets_missing"] == [seed.datasets[4]]
    rhos = [abs(m["spearman_gain"]) for m in body["items"]]
    assert rhos == sorted(rhos, reverse=True)


def test_comparisons_name_the_flagged_task(stack: Stack) -> None:
    """A task whose zero-shot error is below IIMM_MIN_ZERO_SHOT_ERROR is left out, and the
    flagged entry names that task's dataset (id and name) with the row's reason."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3], seed_no=7)
        with db(stack) as s:
            easy = add_dataset(s, project_id)
            name = s.get(Dataset, easy).name
            add_zero_shot(s, seed, easy, 0.99)
            add_scores(s, seed, easy, {"iimm": 0.4}, 0.99)
            add_finetuned(s, seed, easy, {easy: 0.995, **dict(seed.zero_shot)}, "full")
        resp = c.get("/v1/comparisons", params={"base_model_id": seed.model_id, "method": "full"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["datasets"] == sorted(seed.datasets) and easy not in body["datasets"]
        (flagged,) = body["flagged"]
        assert flagged["dataset_id"] == easy and flagged["dataset_name"] == name
        assert set(flagged) == {"dataset_id", "dataset_name", "reason"}
        assert "zero-shot error 0.010" in flagged["reason"]


def test_rankings(stack: Stack) -> None:
    key, project_id, c = new_project(stack)
    with c:
        a = plant(stack, c, key, project_id, [0.2, 0.35, 0.3, 0.5], seed_no=3)
        b = plant(stack, c, key, project_id, [0.1, 0.15, 0.3, 0.25], seed_no=4)
        with db(stack) as s:
            target = add_dataset(s, project_id)
            for sd, x, acc in ((a, 0.4, 0.3), (b, 0.2, 0.6)):
                add_scores(s, sd, target, {"iimm": x}, acc)
        fits = {}
        for sd in (a, b):
            for t in ("gain", "ood_change"):
                body = {"base_model_id": sd.model_id, "method": "full", "target": t,
                        "piecewise": "never"}  # fmt: skip
                assert c.post("/v1/predictors", json=body).status_code == 201
                fits[(sd.model_id, t)] = expected_fit(c, sd, sorted(sd.datasets), target=t)
        # beside a's ranking: its gain predictor on zero-shot accuracy (b has none)
        body = {"base_model_id": a.model_id, "method": "full", "target": "gain",
                "feature": "zero_shot_accuracy", "piecewise": "never"}  # fmt: skip
        zs_predictor = c.post("/v1/predictors", json=body).json()
        tuned = sorted(a.datasets)
        zs_fit = fit_linear([a.zero_shot[d] for d in tuned], [a.gain(d) for d in tuned])
        lonely = add_tiny(c)["id"]
        resp = c.get("/v1/rankings", params={"dataset_id": target})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        want = rank_candidates([
            Candidate(sd.model_id, "full", fits[(sd.model_id, "gain")], x, acc,
                      fits[(sd.model_id, "ood_change")])
            for sd, x, acc in ((a, 0.4, 0.3), (b, 0.2, 0.6))
        ])  # fmt: skip
        assert [i["base_model_id"] for i in body["items"]] == [w.base_model for w in want]
        for got, exp in zip(body["items"], want, strict=True):
            assert got["rank"] == exp.rank
            assert got["feature"] == "iimm" and got["feature_variant"] is None
            for k in ("value", "lower", "upper"):
                _close(got["finetuned_accuracy"][k], getattr(exp.accuracy, k))
                _close(got["ood_change"][k], getattr(exp.ood_change, k))
        beside = {i["base_model_id"]: i["gain_from_zero_shot_accuracy"] for i in body["items"]}
        assert (
            beside[b.model_id] is None and beside[a.model_id]["predictor_id"] == zs_predictor["id"]
        )
        want_zs = predict(zs_fit, 0.3)  # at the target's zero-shot accuracy, 0.3 for a
        for k in ("value", "lower", "upper"):
            _close(beside[a.model_id]["gain"][k], getattr(want_zs, k))
            _close(beside[a.model_id]["finetuned_accuracy"][k],
                   getattr(implied_accuracy_interval(0.3, want_zs), k))  # fmt: skip
        assert beside[a.model_id]["extrapolated"] == want_zs.extrapolated
        assert [u["base_model_id"] for u in body["unranked"]] == [lonely]
        # names beside the ids, as the catalog has them
        names = {m["id"]: m["name"] for m in c.get("/v1/models").json()["items"]}
        assert body["dataset_name"] == c.get(f"/v1/datasets/{target}").json()["name"]
        for item in body["items"] + body["unranked"]:
            assert item["base_model_name"] == names[item["base_model_id"]]
        unscored = c.get("/v1/rankings", params={"dataset_id": a.datasets[0]}).json()
        reasons = {u["base_model_id"]: u["reason"] for u in unscored["unranked"]}
        assert "assess" in reasons[b.model_id] and [i["base_model_id"] for i in
                                                     unscored["items"]] == [a.model_id]  # fmt: skip


def test_tenancy(stack: Stack, planted: tuple[Seed, httpx.Client]) -> None:
    seed, c = planted
    pred = _gain_predictor(seed, c)
    with stack.client(stack.new_key(_name("other"))) as other:
        assert_problem(other.get(f"/v1/predictors/{pred['id']}"), 404)
        assert_problem(other.delete(f"/v1/predictors/{pred['id']}"), 404)
        url = f"/v1/predictors/{pred['id']}/predictions"
        assert_problem(other.post(url, json={"feature_value": 0.3}), 404)
        body = {"base_model_id": seed.model_id, "method": "full"}
        assert_problem(other.post("/v1/predictors", json=body), 404)
        assert_problem(other.get("/v1/comparisons", params=body), 404)
        assert_problem(other.get("/v1/rankings", params={"dataset_id": seed.datasets[0]}), 404)
        assert other.get("/v1/predictors").json()["items"] == []
        mine = {"feature_value": 0.3}
        assert c.post(url, json=mine).status_code == 200
        job = {"type": "assess", "model_id": seed.model_id, "dataset_id": seed.datasets[0]}
        assert_problem(other.post("/v1/jobs", json=job), 404)


def plant_saturating(stack: Stack, c: httpx.Client, key: str, project_id: str) -> Seed:
    """Nine tasks whose G saturates at 0.8 above IIMM 0.4 (a hinge fits them best)."""
    xs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    return plant(stack, c, key, project_id, xs, gain_of=lambda x: min(2.0 * x, 0.8),
                 noise=0.01, seed_no=5)  # fmt: skip


def test_piecewise_fit(stack: Stack) -> None:
    """G saturating above a threshold (CoCa, EVA-02 in the paper): the hinge wins LOO."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant_saturating(stack, c, key, project_id)
        resp = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full"})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        used = sorted(seed.datasets)
        x = stored_feature(c, seed)
        want = fit_auto([x[d] for d in used], [seed.gain(d) for d in used], names=used)
        assert want.kind == body["model_form"] == "piecewise"
        for k in ("slope", "intercept", "breakpoint", "plateau", "r_squared", "loo_rmse"):
            _close(body[k], getattr(want, k))
        assert body["slope_se"] > 0 and body["linear"]["loo_rmse"] > body["loo_rmse"]
        assert body["breakpoint"] == pytest.approx(0.4, abs=0.05)
        got = c.post(f"/v1/predictors/{body['id']}/predictions", json={"feature_value": 0.85})
        _close(got.json()["prediction"]["upper"], predict(want, 0.85).upper)
        line = {"base_model_id": seed.model_id, "method": "full", "piecewise": "never"}
        assert c.post("/v1/predictors", json=line).json()["model_form"] == "linear"


def test_comparisons_and_rankings_name_the_baseline_variant(stack: Stack) -> None:
    """Baselines carry the variant they were computed with; NCTI is combined from its raw
    terms across the project's base models that have them on each dataset (min-max
    normalised per dataset, S_seli + S_ncc - S_vc), and the models it used are named."""
    key, project_id, c = new_project(stack)
    with c:
        a = plant(stack, c, key, project_id, [0.2, 0.35, 0.3, 0.5], seed_no=5)
        b = Seed(key=key, project_id=project_id, model_id=add_tiny(c)["id"])
        third = Seed(key=key, project_id=project_id, model_id=add_tiny(c)["id"])
        rng = np.random.default_rng(6)
        terms: dict[str, dict[str, tuple[float, float, float]]] = {}
        with db(stack) as s:
            for i, d in enumerate(a.datasets):
                add_scores(s, a, d, {"logme": 0.1 * i + float(rng.normal(0, 0.01))}, None)
                pool = (a, b) if i == 0 else (a, b, third)  # 2 candidates on the first task
                for sd in pool:
                    t = (float(rng.uniform(50, 900)), float(rng.uniform(0.3, 1.0)),
                         float(rng.uniform(2.0, 4.0)))  # fmt: skip
                    terms.setdefault(d, {})[sd.model_id] = t
                    names = ("ncti_seli", "ncti_ncc", "ncti_vc")
                    add_scores(s, sd, d, dict(zip(names, t, strict=True)), 0.3)
        resp = c.get("/v1/comparisons", params={"base_model_id": a.model_id, "method": "full"})
        assert resp.status_code == 200, resp.text
        by_measure = {m["measure"]: m for m in resp.json()["items"]}
        assert by_measure["iimm"]["variant"] is None and by_measure["logme"]["variant"] == (
            "definition"
        )
        ncti = by_measure["ncti"]
        assert ncti["variant"] == "definition"
        assert ncti["relative_to"] == sorted([a.model_id, b.model_id, third.model_id])
        assert by_measure["ncti_seli"]["relative_to"] is None
        tuned = sorted(a.datasets)
        values = []
        for d in tuned:
            models = sorted(terms[d])
            cols = np.array([terms[d][m] for m in models])
            span = cols.max(axis=0) - cols.min(axis=0)
            scaled = (cols - cols.min(axis=0)) / span
            mine = scaled[models.index(a.model_id)]
            values.append(float(mine[0] + mine[1] - mine[2]))
        (want,) = compare_measures(
            {"ncti": values},
            [a.gain(d) for d in tuned],
            [a.finetuned[d][d] for d in tuned],
            names=tuned,
        )
        for k in ("spearman_gain", "spearman_accuracy", "r_squared", "slope_pvalue"):
            _close(ncti[k], getattr(want, k))

        refused = c.post(
            "/v1/predictors",
            json={"base_model_id": a.model_id, "method": "full", "feature": "ncti"},
        )
        assert_problem(refused, 422, "ncti_seli", "candidate models")
        body = {"base_model_id": a.model_id, "method": "full", "feature": "logme",
                "piecewise": "never"}  # fmt: skip
        assert c.post("/v1/predictors", json=body).status_code == 201
        with db(stack) as s:
            target = add_dataset(s, project_id)
            add_scores(s, a, target, {"logme": 0.15}, 0.4)
        ranked = c.get("/v1/rankings", params={"dataset_id": target}).json()["items"]
        assert [(i["feature"], i["feature_variant"]) for i in ranked] == [("logme", "definition")]


def test_deleting_fitted_data_refused_then_cascaded_leaves_a_stale_predictor(
    stack: Stack,
) -> None:
    """A dataset with fine-tuning results is a 409 counting them; the cascade removes them
    and the predictor fitted on it reads as stale, naming the missing dataset."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3, 0.5], seed_no=7)
        pred = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full"})
        assert pred.status_code == 201 and pred.json()["stale"] is False, pred.text
        gone, n = seed.datasets[0], len(seed.datasets)
        resp = c.delete(f"/v1/datasets/{gone}")
        assert_problem(resp, 409, "cascade=true")
        # the model tuned on it (with its n evaluations), the zero-shot evaluation on it and
        # the other n - 1 tuned models' evaluations on it, its 3 measures
        want = {"finetuned_models": 1, "evaluations": n + 1 + (n - 1), "scores": len(MEASURES)}
        assert resp.json()["dependents"] == want
        resp = c.delete(f"/v1/models/{seed.model_id}")
        assert_problem(resp, 409)
        assert resp.json()["dependents"] == {
            "finetuned_models": n, "evaluations": n * n + n, "scores": n * len(MEASURES),
            "predictors": 1,
        }  # fmt: skip
        assert c.delete(f"/v1/datasets/{gone}", params={"cascade": "true"}).status_code == 204
        with db(stack) as s:
            left = s.scalars(select(Evaluation.dataset_id).where(
                Evaluation.project_id == project_id)).all()  # fmt: skip
            tuned = s.scalars(select(FinetunedModel.train_dataset_id).where(
                FinetunedModel.project_id == project_id)).all()  # fmt: skip
        assert gone not in left and len(left) == (n - 1) * (n - 1) + (n - 1)
        assert sorted(tuned) == sorted(seed.datasets[1:])
        read = c.get(f"/v1/predictors/{pred.json()['id']}").json()
        assert read["stale"] is True and read["missing_dataset_ids"] == [gone]
        listed = c.get("/v1/predictors").json()["items"]
        assert [p["missing_dataset_ids"] for p in listed] == [[gone]]


def test_matrix_leaves_a_copy_of_the_training_task_out_of_ood(stack: Stack) -> None:
    """A second registration of the training task's content (same fingerprint) is not
    another task for the out-of-domain change of the matrix."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3], seed_no=3)
        train = seed.datasets[0]
        with db(stack) as s:
            twin = add_dataset(s, project_id)
            copy = s.get(Dataset, twin)
            copy.fingerprint = s.get(Dataset, train).fingerprint
            copy.duplicate_allowed = True  # registered with allow_duplicate: one copy per content
            add_zero_shot(s, seed, twin, 0.3)
            tuned = s.scalar(select(FinetunedModel.id).where(
                FinetunedModel.train_dataset_id == train))  # fmt: skip
            s.add(Evaluation(
                id=new_id("evl"), project_id=project_id, base_model_id=seed.model_id,
                finetuned_model_id=tuned, model_ref=tuned, dataset_id=twin, split="test",
                top1=0.95, n=4, per_class_recall=[],
            ))  # fmt: skip
        params = {"base_model_id": seed.model_id, "method": "full"}
        rows = {
            r["train_dataset_id"]: r for r in c.get("/v1/matrices", params=params).json()["rows"]
        }
    assert rows[train]["accuracies"][twin] == 0.95  # shown in the matrix
    assert rows[train]["ood_change"] == pytest.approx(seed.ood(train), abs=1e-12)  # not counted
    other = seed.datasets[1]
    assert rows[other]["ood_change"] == pytest.approx(seed.ood(other), abs=1e-12)


def plant_zero_shot_driven(stack: Stack, c: httpx.Client, key: str, project_id: str,
                           seed_no: int) -> Seed:  # fmt: skip
    """Five fine-tuned tasks whose G falls with zero-shot accuracy (G ≈ 0.9 − 1.2·acc_zs)
    while their IIMM is drawn independently: zero-shot accuracy predicts G, IIMM does not."""
    rng = np.random.default_rng(seed_no)
    seed = Seed(key=key, project_id=project_id, model_id=add_tiny(c)["id"])
    with db(stack) as s:
        seed.datasets = [add_dataset(s, project_id) for _ in range(5)]
        for i, d in enumerate(seed.datasets):
            acc_zs = 0.15 + 0.1 * i
            add_zero_shot(s, seed, d, acc_zs)
            add_scores(s, seed, d, {"iimm": float(rng.uniform(0.1, 0.6))}, acc_zs)
        for d in seed.datasets:
            gain = 0.9 - 1.2 * seed.zero_shot[d] + float(rng.normal(0, 0.01))
            accs = {j: seed.zero_shot[j] - 0.02 for j in seed.datasets}
            accs[d] = seed.zero_shot[d] + gain * (1 - seed.zero_shot[d])
            add_finetuned(s, seed, d, accs, "full")
    return seed


def test_rankings_by_the_predictor_the_comparison_names_best(stack: Stack) -> None:
    """`by=best` ranks by the zero-shot-accuracy predictor where the comparison says zero-shot
    accuracy predicts G better than IIMM; `by=iimm` / `by=zero_shot` override; each row shows
    the other predictor's prediction beside its own; an unknown `by` is a 422 naming the values."""
    key, project_id, c = new_project(stack)
    with c:
        a = plant_zero_shot_driven(stack, c, key, project_id, seed_no=11)
        b = plant_zero_shot_driven(stack, c, key, project_id, seed_no=12)
        points = {a.model_id: (0.55, 0.2), b.model_id: (0.15, 0.6)}  # target's (iimm, acc_zs)
        with db(stack) as s:
            target = add_dataset(s, project_id)
            for sd in (a, b):
                x, acc = points[sd.model_id]
                add_scores(s, sd, target, {"iimm": x}, acc)
        fits: dict[tuple[str, str], Any] = {}
        for sd in (a, b):
            comparison = c.get(
                "/v1/comparisons", params={"base_model_id": sd.model_id, "method": "full"}
            ).json()
            assert comparison["best_measure"] == "zero_shot_accuracy", comparison
            tuned = sorted(sd.datasets)
            stored = stored_feature(c, sd)
            by_feature = {"iimm": [stored[d] for d in tuned],
                          "zero_shot_accuracy": [sd.zero_shot[d] for d in tuned]}  # fmt: skip
            for feature, xs in by_feature.items():
                body = {"base_model_id": sd.model_id, "method": "full", "feature": feature,
                        "piecewise": "never"}  # fmt: skip
                assert c.post("/v1/predictors", json=body).status_code == 201
                fits[(sd.model_id, feature)] = fit_linear(xs, [sd.gain(d) for d in tuned])

        def want(feature: str) -> list[str]:
            cands = []
            for sd in (a, b):
                x, acc = points[sd.model_id]
                feature_value = x if feature == "iimm" else acc
                cands.append(Candidate(sd.model_id, "full", fits[(sd.model_id, feature)],
                                       feature_value, acc))  # fmt: skip
            return [r.base_model for r in rank_candidates(cands)]

        assert want("iimm") != want("zero_shot_accuracy")  # the choice changes the order
        got = {}
        for by in ("best", "zero_shot", "iimm", None):
            params = {"dataset_id": target} | ({} if by is None else {"by": by})
            resp = c.get("/v1/rankings", params=params)
            assert resp.status_code == 200, resp.text
            got[by] = resp.json()
            assert got[by]["by"] == (by or "best")
        assert got[None] == got["best"]
        for by, feature, beside, other in (
            ("best", "zero_shot_accuracy", "gain_from_iimm", "gain_from_zero_shot_accuracy"),
            ("zero_shot", "zero_shot_accuracy", "gain_from_iimm", "gain_from_zero_shot_accuracy"),
            ("iimm", "iimm", "gain_from_zero_shot_accuracy", "gain_from_iimm"),
        ):
            items = got[by]["items"]
            assert [i["base_model_id"] for i in items] == want(feature), by
            for item in items:
                x, acc = points[item["base_model_id"]]
                assert item["feature"] == feature and item["ranked_by"].startswith(f"by={by}")
                assert item[other] is None  # it is the row's own prediction
                side = "iimm" if beside == "gain_from_iimm" else "zero_shot_accuracy"
                expect = predict(fits[(item["base_model_id"], side)], x if side == "iimm" else acc)
                for k in ("value", "lower", "upper"):
                    _close(item[beside]["gain"][k], getattr(expect, k))
        reason = got["best"]["items"][0]["ranked_by"]
        assert reason.startswith("by=best: the comparison over 5 tasks ranks zero_shot_accuracy")
        assert reason.endswith("the gain predictor used was fitted on 5 tasks"), reason
        bad = c.get("/v1/rankings", params={"dataset_id": target, "by": "logme"})
        assert_problem(bad, 422)
        assert bad.json()["errors"][0]["loc"] == ["query", "by"]
        for allowed in ("'iimm'", "'zero_shot'", "'best'"):
            assert allowed in bad.json()["detail"]


REFIT = re.compile(r": (iimm predictors fit [^()]*) \(POST /v1/predictors (\{.*\})\)$")


def refit_of(reason: str) -> tuple[list[str], dict[str, Any]]:
    """The `iimm predictors fit` arguments and the POST body a stale reason names."""
    found = REFIT.search(reason)
    assert found is not None, reason
    return shlex.split(found.group(1))[3:], json.loads(found.group(2))


def set_tuned_accuracy(stack: Stack, seed: Seed, train: str, acc: float) -> None:
    """Change the stored accuracy of the model fine-tuned on `train` on its own task."""
    with db(stack) as s:
        evaluation = s.scalars(
            select(Evaluation).join(FinetunedModel, Evaluation.finetuned_model_id ==
                                    FinetunedModel.id)
            .where(FinetunedModel.train_dataset_id == train, Evaluation.dataset_id == train)
        ).one()  # fmt: skip
        evaluation.top1 = acc
    seed.finetuned[train][train] = acc


def test_a_predictor_is_stale_only_when_a_refit_would_see_other_points(stack: Stack) -> None:
    """Fitted on tasks A, B, C, a later fine-tune of D (with its evaluations on A, B, C) leaves
    it current, though a default refit now fits on D too. Changing A's fine-tuned accuracy
    makes it stale: one changed point, and the reason names the refit with its own options
    (`--piecewise never`, its datasets); running that command gives a current predictor and
    the old one then names it."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3, 0.5], tuned=3, seed_no=8)
        a, b, cc, d = seed.datasets
        body = {"base_model_id": seed.model_id, "method": "full", "piecewise": "never"}
        first = c.post("/v1/predictors", json=body).json()
        assert first["n"] == 3 and first["stale"] is False and first["changed_points"] == 0
        assert first["stale_reason"] is None and first["skipped"] == []
        with db(stack) as s:  # D fine-tuned later, evaluated on every task
            add_finetuned(s, seed, d, {**{j: seed.zero_shot[j] - 0.05 for j in seed.datasets},
                                       d: 0.9}, "full")  # fmt: skip
        read = c.get(f"/v1/predictors/{first['id']}").json()
        assert read["stale"] is False and read["changed_points"] == 0, read["stale_reason"]
        assert read["stale_reason"] is None
        assert c.post("/v1/predictors", json=body).json()["n"] == 4  # a default refit adds D

        set_tuned_accuracy(stack, seed, a, seed.finetuned[a][a] - 0.1)
        read = c.get(f"/v1/predictors/{first['id']}").json()
        assert read["stale"] is True and read["changed_points"] == 1
        reason = read["stale_reason"]
        assert reason.startswith(f"1 of its 3 point(s) changed since fitted ({a}: (x, y) ")
        args, post = refit_of(reason)
        # the fit's points (and so the refit's datasets) are in dataset id order; ids made in
        # the same millisecond need not sort in creation order (CI under load met that)
        ids = sorted([a, b, cc])
        assert post == {**body, "feature": "iimm", "target": "gain", "dataset_ids": ids}
        assert args == ["--base-model-id", seed.model_id, "--method", "full", "--feature", "iimm",
                        "--target", "gain", "--piecewise", "never",
                        *[arg for d in ids for arg in ("--dataset-id", d)]]  # fmt: skip
        listed = {p["id"]: p for p in c.get("/v1/predictors").json()["items"]}
        assert listed[first["id"]]["stale"] is True
        assert listed[first["id"]]["stale_reason"] == reason
        assert listed[first["id"]]["refitted_as"] is None  # not refitted yet

        out = subprocess.run(
            [sys.executable, "-m", "iimm_cli", "predictors", "fit", *args, "--json",
             "--url", stack.url, "--api-key", key],
            env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        refit = json.loads(out.stdout)
        assert refit["id"] != first["id"] and refit["n"] == 3 and refit["piecewise"] == "never"
        assert refit["stale"] is False and refit["stale_reason"] is None
        check_stats(refit, expected_fit(c, seed, [a, b, cc]))
        old = c.get(f"/v1/predictors/{first['id']}").json()
        assert old["stale"] is True
        assert old["stale_reason"].endswith(f": refitted as {refit['id']}")
        assert old["refitted_as"] == refit["id"] and refit["refitted_as"] is None
        listed = {p["id"]: p for p in c.get("/v1/predictors").json()["items"]}
        assert listed[first["id"]]["refitted_as"] == refit["id"]
        assert c.post("/v1/predictors", json=post).json()["id"] == refit["id"]


def test_a_fine_tuned_task_without_scores_is_skipped_on_fit_and_check(stack: Stack) -> None:
    """A fine-tuned, evaluated task with no score of the feature is listed in `skipped` with
    the score job to run: on a refit that finds the same points (the stored predictor) and in
    every read of the predictor, which stays current."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3], seed_no=9)
        body = {"base_model_id": seed.model_id, "method": "full", "piecewise": "never"}
        first = c.post("/v1/predictors", json=body).json()
        assert first["n"] == 3 and first["skipped"] == []
        with db(stack) as s:
            e = add_dataset(s, project_id)
            add_zero_shot(s, seed, e, 0.3)
            add_finetuned(s, seed, e, {e: 0.8}, "full")
        want = [
            {
                "dataset_id": e,
                "reason": f"no iimm score for dataset {e}: run a score job "
                "(its embeddings must be stored: an assess or embed job stores them)",
            }
        ]
        refit = c.post("/v1/predictors", json=body)
        assert refit.status_code == 200 and refit.json()["id"] == first["id"], refit.text
        assert refit.json()["skipped"] == want and refit.json()["stale"] is False
        read = c.get(f"/v1/predictors/{first['id']}").json()
        assert read["skipped"] == want and read["stale"] is False


def _assess(c: httpx.Client, model_id: str, dataset_id: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "assess", "model_id": model_id, "dataset_id": dataset_id, "bootstrap": 0}
    resp = c.post("/v1/jobs", json=body | extra)
    assert resp.status_code == 202, resp.text
    job = wait_job(c, resp.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_assess_leads_with_the_predictor_rankings_rank_by(stack: Stack, shapes_zip: Path) -> None:
    """An assess job (a real worker embeds and scores an uploaded task) leads each method with
    the gain predictor the ranking of that task ranks by: under `by=best` (the default) the
    zero-shot-accuracy one where the comparison says zero-shot accuracy predicts G, with the
    same sentence as `ranked_by` in `predicted_by`; `by` overrides; the other predictor's gain
    stands beside, each equal to predict() on fits computed here; an unknown `by` is a 422 at
    submission naming the allowed values. Once a tuned task's zero-shot accuracy changes, the
    assessment and the ranking row say the predictor they used is stale, and why; refitting
    as the reason says gives the current predictor the ranking then uses."""
    key, project_id, c = new_project(stack)
    with c:
        sd = plant_zero_shot_driven(stack, c, key, project_id, seed_no=14)
        target = upload(c, shapes_zip, _name("shapes")).json()["id"]
        tuned, stored = sorted(sd.datasets), stored_feature(c, sd)
        fits, ids = {}, {}
        for feature, xs in (("iimm", [stored[d] for d in tuned]),
                            ("zero_shot_accuracy", [sd.zero_shot[d] for d in tuned])):  # fmt: skip
            body = {"base_model_id": sd.model_id, "method": "full", "feature": feature,
                    "piecewise": "never"}  # fmt: skip
            resp = c.post("/v1/predictors", json=body)
            assert resp.status_code == 201, resp.text
            ids[feature] = resp.json()["id"]
            fits[feature] = fit_linear(xs, [sd.gain(d) for d in tuned])
        bad = c.post("/v1/jobs", json={"type": "assess", "model_id": sd.model_id,
                                       "dataset_id": target, "by": "logme"})  # fmt: skip
        assert_problem(bad, 422)
        assert bad.json()["errors"][0]["loc"][-1] == "by"
        for allowed in ("'iimm'", "'zero_shot'", "'best'"):
            assert allowed in bad.json()["detail"]
        for by, feature in ((None, "zero_shot_accuracy"), ("iimm", "iimm"),
                            ("zero_shot", "zero_shot_accuracy")):  # fmt: skip
            job = _assess(c, sd.model_id, target, **({} if by is None else {"by": by}))
            assert job["params"]["by"] == (by or "best")
            doc = job["result"]
            at = {"iimm": doc["iimm"]["value"], "zero_shot_accuracy": doc["zero_shot_accuracy"]}
            full = doc["methods"]["full"]
            assert full["feature"] == feature and full["gain"]["predictor_id"] == ids[feature]
            assert full["predicted_by"].startswith(f"by={by or 'best'}")
            other = "iimm" if feature == "zero_shot_accuracy" else "zero_shot_accuracy"
            own_key, beside_key = (f"gain_from_{'iimm' if f == 'iimm' else f}"
                                   for f in (feature, other))  # fmt: skip
            assert full[own_key] is None and full[beside_key]["predictor_id"] == ids[other]
            assert full[beside_key]["stale"] is False
            for got, f in ((full["gain"], feature), (full[beside_key], other)):
                want = predict(fits[f], at[f])
                for k in ("value", "lower", "upper"):
                    _close(got["prediction"][k], getattr(want, k))
            assert full["stale"] is False and full["stale_reason"] is None
            ranking = c.get("/v1/rankings", params={"dataset_id": target, "by": by or "best"})
            (row,) = ranking.json()["items"]
            assert row["gain_predictor_id"] == full["gain"]["predictor_id"]
            assert row["ranked_by"] == full["predicted_by"]
            assert row["ood_change_by"] == full["ood_change_by"]  # the same sentence, or null
            assert row[beside_key]["predictor_id"] == ids[other]
            assert row[beside_key]["stale"] is False
            _close(row["gain"]["value"], full["gain"]["prediction"]["value"])
        best = c.get("/v1/rankings", params={"dataset_id": target}).json()["items"][0]
        assert "comparison over 5 tasks ranks zero_shot_accuracy first" in best["ranked_by"]
        assert best["stale"] is False and best["stale_reason"] is None
        # a tuned task's zero-shot accuracy re-evaluated to another value: its G changes, so
        # both fits (on the same tasks) are stale
        again = sd.datasets[0]
        with db(stack) as s:
            zero_shot = Evaluation.finetuned_model_id.is_(None)
            old = s.scalars(select(Evaluation).where(Evaluation.dataset_id == again,
                                                     zero_shot)).one()  # fmt: skip
            s.delete(old)
            s.flush()
            add_zero_shot(s, sd, again, round(sd.zero_shot[again] * 0.9, 4))
        n = len(tuned)
        head = (f"gain predictor {ids['zero_shot_accuracy']} (zero_shot_accuracy) is stale: "
                f"1 of its {n} point(s) changed since fitted ({again}: (x, y) ")  # fmt: skip
        full = _assess(c, sd.model_id, target)["result"]["methods"]["full"]
        assert full["gain"]["predictor_id"] == ids["zero_shot_accuracy"]
        assert full["stale"] is True and full["stale_reason"].startswith(head)
        # the IIMM predictor beside it is fitted on the same tasks: stale too, and flagged
        assert full["gain_from_iimm"]["predictor_id"] == ids["iimm"]
        assert full["gain_from_iimm"]["stale"] is True
        why = full["stale_reason"]
        row = c.get("/v1/rankings", params={"dataset_id": target}).json()["items"][0]
        assert row["stale"] is True and row["stale_reason"] == why
        assert row["gain_from_iimm"]["predictor_id"] == ids["iimm"]
        assert row["gain_from_iimm"]["stale"] is True
        row = c.get("/v1/rankings", params={"dataset_id": target, "by": "iimm"}).json()["items"][0]
        assert row["stale_reason"].startswith(
            head.replace(ids["zero_shot_accuracy"], ids["iimm"]).replace(
                "(zero_shot_accuracy)", "(iimm)"
            )
        )
        # refitting as the reason says gives a current predictor, which the ranking then uses
        _, body = refit_of(why)
        refit = c.post("/v1/predictors", json=body)
        assert refit.status_code == 201 and refit.json()["stale"] is False, refit.text
        row = c.get("/v1/rankings", params={"dataset_id": target}).json()["items"][0]
        assert row["gain_predictor_id"] == refit.json()["id"]
        assert row["stale"] is False and row["stale_reason"] is None
        # the row is fresh, but the IIMM prediction beside it still comes from a stale fit
        assert row["gain_from_iimm"]["predictor_id"] == ids["iimm"]
        assert row["gain_from_iimm"]["stale"] is True
        assert row["ood_change_by"] is None and row["ood_change_predictor_id"] is None
        # forgetting: IIMM's predictor when there is one, whatever `by` says, named
        ood = {}
        for feature in ("zero_shot_accuracy", "iimm"):
            body = {"base_model_id": sd.model_id, "method": "full", "feature": feature,
                    "target": "ood_change", "piecewise": "never"}  # fmt: skip
            resp = c.post("/v1/predictors", json=body)
            assert resp.status_code == 201, resp.text
            ood[feature] = resp.json()
            for by in ("best", "zero_shot"):
                params = {"dataset_id": target, "by": by}
                row = c.get("/v1/rankings", params=params).json()["items"][0]
                assert row["ood_change_predictor_id"] == ood[feature]["id"]
                assert row["ood_change_by"].startswith(
                    f"ood_change from {ood[feature]['id']} ({feature}, fitted on "
                    f"{ood[feature]['n']} tasks): "
                    + ("IIMM's forgetting predictor" if feature == "iimm" else
                       "no forgetting predictor on iimm, so the one on zero_shot_accuracy")
                )  # fmt: skip
                assert "whatever `by` says" in row["ood_change_by"]
        full = _assess(c, sd.model_id, target, by="zero_shot")["result"]["methods"]["full"]
        assert full["ood_change"]["predictor_id"] == ood["iimm"]["id"]
        assert full["ood_change_by"] == row["ood_change_by"]


def test_rankings_prefer_a_fresh_predictor_to_a_newer_stale_one(stack: Stack) -> None:
    """Of two IIMM gain predictors of one base model and method, the ranking uses the newest
    while both are fresh, the older one once the newer is stale (a dataset it was fitted on
    deleted), and the newest again, flagged stale, once both are."""
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3, 0.5, 0.45], seed_no=21)
        with db(stack) as s:
            target = add_dataset(s, project_id)
            add_scores(s, seed, target, {"iimm": 0.4}, 0.3)
        body = {"base_model_id": seed.model_id, "method": "full", "piecewise": "never"}
        older = c.post("/v1/predictors", json=body | {"dataset_ids": seed.datasets[:4]})
        newer = c.post("/v1/predictors", json=body)
        assert older.status_code == newer.status_code == 201, (older.text, newer.text)
        ids = {"older": older.json()["id"], "newer": newer.json()["id"]}
        assert older.json()["n"] == 4 and newer.json()["n"] == 5

        def row() -> dict[str, Any]:
            resp = c.get("/v1/rankings", params={"dataset_id": target, "by": "iimm"})
            assert resp.status_code == 200, resp.text
            (item,) = resp.json()["items"]
            return item

        first = row()
        assert first["gain_predictor_id"] == ids["newer"] and first["stale"] is False
        gone = seed.datasets[4]  # only the newer one was fitted on it
        assert c.delete(f"/v1/datasets/{gone}", params={"cascade": "true"}).status_code == 204
        assert c.get(f"/v1/predictors/{ids['newer']}").json()["stale"] is True
        assert c.get(f"/v1/predictors/{ids['older']}").json()["stale"] is False
        second = row()
        assert second["gain_predictor_id"] == ids["older"], second
        assert second["stale"] is False and second["stale_reason"] is None
        gone = seed.datasets[3]  # both were fitted on it
        assert c.delete(f"/v1/datasets/{gone}", params={"cascade": "true"}).status_code == 204
        third = row()
        assert third["gain_predictor_id"] == ids["newer"] and third["stale"] is True
        assert third["stale_reason"].startswith(f"gain predictor {ids['newer']} (iimm) is stale")


def test_fine_tuned_tasks_without_scores_are_named_to_score(stack: Stack) -> None:
    """Three fine-tuned tasks without scores: the fit and the comparison say so and name the
    datasets to score, not that fine-tuned tasks are missing."""
    key, project_id, c = new_project(stack)
    with c:
        seed = Seed(key=key, project_id=project_id, model_id=add_tiny(c)["id"])
        with db(stack) as s:
            seed.datasets = [add_dataset(s, project_id) for _ in range(3)]
            for d in seed.datasets:
                add_zero_shot(s, seed, d, 0.3)
            for d in seed.datasets:
                add_finetuned(s, seed, d, {j: 0.25 for j in seed.datasets} | {d: 0.8}, "full")
        names = ", ".join(sorted(seed.datasets))
        resp = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full"})
        assert_problem(resp, 422, f"3 fine-tuned tasks but 0 with iimm scores (at least 3 are "
                       f"needed): score datasets {names} (POST /v1/jobs ", '"type": "score"',
                       f'"model_id": "{seed.model_id}"', '"measures": ["iimm"]')  # fmt: skip
        assert "more fine-tuned" not in resp.json()["detail"]
        params = {"base_model_id": seed.model_id, "method": "full"}
        got = c.get("/v1/comparisons", params=params)
        assert got.status_code == 200, got.text
        (skipped,) = got.json()["skipped"]
        assert skipped["measure"] == "zero_shot_accuracy"
        assert (f"3 fine-tuned tasks but 0 with zero_shot_accuracy scores (at least 3 are "
                f"needed): score datasets {names}") in skipped["reason"]  # fmt: skip


def _rho(comparison: dict[str, Any], measure: str) -> tuple[int, str]:
    """The rank (from 1) of `measure` in a comparison and its ρ vs G as the sentences say it."""
    names = [i["measure"] for i in comparison["items"]]
    item = comparison["items"][names.index(measure)]
    return names.index(measure) + 1, f"ρ vs G {item['spearman_gain']:+.2f}"


def test_ranked_by_says_the_comparison_and_the_predictor_used(stack: Stack) -> None:
    """`ranked_by` on planted data, in each case: the comparison's task count beside the
    count the predictor used was fitted on; the comparison's best measure without a predictor
    (falls back to IIMM's, named with its place); by= with and without its predictor; no
    comparison because too few tasks have scores (best_measure null), with a stale predictor."""
    key, project_id, c = new_project(stack)
    with c:
        sd = plant_zero_shot_driven(stack, c, key, project_id, seed_no=23)
        with db(stack) as s:
            target = add_dataset(s, project_id)
            add_scores(s, sd, target, {"iimm": 0.4}, 0.3)
        comparison = c.get(
            "/v1/comparisons", params={"base_model_id": sd.model_id, "method": "full"}
        ).json()
        assert comparison["best_measure"] == "zero_shot_accuracy" and comparison["n_tasks"] == 5
        body = {"base_model_id": sd.model_id, "method": "full", "piecewise": "never"}
        fit = c.post("/v1/predictors", json=body | {"dataset_ids": sd.datasets[:4]})
        assert fit.status_code == 201 and fit.json()["n"] == 4, fit.text

        def ranking(by: str) -> dict[str, Any]:
            resp = c.get("/v1/rankings", params={"dataset_id": target, "by": by})
            assert resp.status_code == 200, resp.text
            return resp.json()

        _, zs = _rho(comparison, "zero_shot_accuracy")
        place, iimm = _rho(comparison, "iimm")
        (row,) = ranking("best")["items"]
        assert row["ranked_by"] == (
            f"by=best: the comparison over 5 tasks ranks zero_shot_accuracy first ({zs}) but it "
            f"has no gain predictor usable here, so iimm (ranked {place} of "
            f"{len(comparison['items'])}, {iimm}); the gain predictor used was fitted on 4 tasks"
        )
        (row,) = ranking("iimm")["items"]
        assert row["ranked_by"] == "by=iimm: the gain predictor on iimm, fitted on 4 tasks"
        got = ranking("zero_shot")
        assert got["items"] == [] and got["unranked"][0]["reason"].startswith(
            "by=zero_shot: no gain predictor on zero_shot_accuracy"
        )
        fit = c.post("/v1/predictors", json=body | {"dataset_ids": sd.datasets[:3],
                                                   "feature": "zero_shot_accuracy"})  # fmt: skip
        assert fit.status_code == 201 and fit.json()["n"] == 3, fit.text
        (row,) = ranking("best")["items"]
        assert row["ranked_by"] == (
            f"by=best: the comparison over 5 tasks ranks zero_shot_accuracy first ({zs}); "
            "the gain predictor used was fitted on 3 tasks"
        )
        assert row["gain_predictor_id"] == fit.json()["id"] and row["stale"] is False

    # production's case: 3 fine-tuned tasks, one without scores, so no measure is compared
    key, project_id, c = new_project(stack)
    with c:
        seed = plant(stack, c, key, project_id, [0.2, 0.35, 0.3], seed_no=24)
        with db(stack) as s:
            target = add_dataset(s, project_id)
            add_scores(s, seed, target, {"iimm": 0.4}, 0.3)
        fit = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full"})
        assert fit.status_code == 201 and fit.json()["n"] == 3, fit.text
        with db(stack) as s:
            for row_ in s.scalars(select(Score).where(Score.dataset_id == seed.datasets[0])):
                s.delete(row_)
        comparison = c.get(
            "/v1/comparisons", params={"base_model_id": seed.model_id, "method": "full"}
        ).json()
        assert comparison["best_measure"] is None and comparison["n_tasks"] == 3, comparison
        resp = c.get("/v1/rankings", params={"dataset_id": target})
        assert resp.status_code == 200, resp.text
        (row,) = resp.json()["items"]
        assert row["stale"] is True  # the task without scores is no longer a point of a refit
        assert row["ranked_by"] == (
            "by=best: no comparison yet (2 of the 3 tasks needed have scores), so IIMM's gain "
            "predictor, fitted on 3 tasks; it is stale, there is no other on iimm: see "
            "stale_reason"
        )
