"""The paper's loop over the REST API, on the reference model and the reference suite.

Used by `iimm demo` (and the end-to-end test): upload the suite, assess every task (embed +
score), score the transferability baselines on each, fine-tune about half of them with equal
step budgets, read the accuracy matrix, fit gain and out-of-domain-change predictors against
IIMM and against zero-shot accuracy, compare every measure (IIMM's terms, zero-shot accuracy
and the baselines), predict for the other tasks, fine-tune those too and set the prediction
beside what was measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError

# fine-tuned first (the predictors' training tasks) and predicted afterwards: both halves
# run from easy to hard and mix seen concepts, new domains and uncaptioned ones
TRAIN_TASKS = (
    "colours", "digits", "shapes", "noisy-shapes", "handwritten-digits", "letters", "counts",
)  # fmt: skip
HELD_OUT_TASKS = (
    "orientations", "textures", "sizes", "compositions", "outlined-shapes", "positions",
)  # fmt: skip
FEATURES = ("iimm", "zero_shot_accuracy")
#: The transferability baselines the loop scores on every task for the comparison (each as its
#: paper defines it); NCTI is left out: it is relative to several base models, the loop has one.
BASELINES = ("transrate", "sfda", "emms", "logme", "hscore", "gbc")
TARGETS = ("gain", "ood_change")


@dataclass
class LoopConfig:
    """What the loop runs: suite size, fine-tuning budget, tasks, bootstrap resamples."""

    per_class: int = 60
    seed: int = 0
    max_steps: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    bootstrap: int = 100
    baselines: Sequence[str] = BASELINES
    train_tasks: Sequence[str] = TRAIN_TASKS
    held_out_tasks: Sequence[str] = HELD_OUT_TASKS

    def hyperparameters(self) -> dict[str, Any]:
        """The finetune job's hyperparameters: SGD, an equal step budget for every task."""
        return {
            "max_steps": self.max_steps, "batch_size": self.batch_size, "lr": self.lr,
            "schedule": "cosine", "seed": self.seed,
        }  # fmt: skip


@dataclass
class LoopResult:
    """Everything the loop read back from the API."""

    model: dict[str, Any]
    datasets: dict[str, str]  # task name -> dataset id
    assessments: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_matrix: dict[str, Any] = field(default_factory=dict)
    matrix: dict[str, Any] = field(default_factory=dict)
    predictors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy (predictors keyed ``feature:target``)."""
        out = dict(vars(self))
        out["predictors"] = {f"{f}:{t}": p for (f, t), p in self.predictors.items()}
        return out


def run_jobs(
    client: Any, bodies: list[dict[str, Any]], label: str, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Submit every job, then wait for each; a failed job is a CliError naming it."""
    ids = [client.request("POST", "/v1/jobs", json=b)["id"] for b in bodies]
    log(f"  {label}: {len(ids)} job(s) submitted")
    jobs = []
    for job_id in ids:
        job = client.wait_job(job_id, timeout=1800)
        if job["status"] != "succeeded":
            raise CliError(f"{label} job {job_id} {job['status']}: {job.get('error')}")
        jobs.append(job)
    return jobs


def upload_suite(
    client: Any, root: Path, cfg: LoopConfig, log: Callable[[str], None]
) -> dict[str, str]:
    """Generate the reference suite's tasks of `cfg` under `root` and upload each."""
    from iimm_cli.datasets import upload, wait_ingested
    from workers.ml.reference.suite import generate_suite

    names = [*cfg.train_tasks, *cfg.held_out_tasks]
    folders = generate_suite(root, per_class=cfg.per_class, seed=cfg.seed, tasks=names)
    stamp = int(time.time())
    # all uploaded first: their ingest jobs validate them on the workers meanwhile
    sent = {name: upload(client, folders[name], f"{name}-{stamp}", wait=False) for name in names}
    ids = {name: wait_ingested(client, dataset)["id"] for name, dataset in sent.items()}
    log(f"  {len(ids)} datasets uploaded ({cfg.per_class} images per class, a quarter test)")
    return ids


def _finetune(
    client: Any, result: LoopResult, tasks: Sequence[str], cfg: LoopConfig, log: Any
) -> None:
    bodies = [
        {"type": "finetune", "model_id": result.model["id"], "dataset_id": result.datasets[t],
         "method": "full", "hyperparameters": cfg.hyperparameters()}
        for t in tasks
    ]  # fmt: skip
    run_jobs(client, bodies, f"fine-tune {', '.join(tasks)}", log)


def _matrix(client: Any, result: LoopResult) -> dict[str, Any]:
    params = {"base_model_id": result.model["id"], "method": "full"}
    return client.request("GET", "/v1/matrices", params=params)


def _fit(client: Any, result: LoopResult) -> None:
    for feature in FEATURES:
        for target in TARGETS:
            body = {"base_model_id": result.model["id"], "method": "full", "feature": feature,
                    "target": target, "piecewise": "never"}  # fmt: skip
            result.predictors[(feature, target)] = client.request(
                "POST", "/v1/predictors", json=body
            )


def _predict(client: Any, result: LoopResult, tasks: Sequence[str]) -> None:
    for task in tasks:
        per = result.predictions.setdefault(task, {})
        for (feature, target), p in result.predictors.items():
            body = {"dataset_id": result.datasets[task]}
            per[f"{feature}:{target}"] = client.request(
                "POST", f"/v1/predictors/{p['id']}/predictions", json=body
            )


def run_loop(
    client: Any, work: Path, cfg: LoopConfig, log: Callable[[str], None] = print
) -> LoopResult:
    """The whole loop on the `reference` preset; returns what the API said at each stage."""
    model = client.request(
        "POST", "/v1/models", json={"name": f"reference-{int(time.time())}", "preset": "reference"}
    )
    log(f"  model {model['id']}: the reference preset ({model['spec']})")
    result = LoopResult(model, upload_suite(client, work / "suite", cfg, log))
    names = list(result.datasets)
    assess = [{"type": "assess", "model_id": model["id"], "dataset_id": result.datasets[n],
               "bootstrap": cfg.bootstrap} for n in names]  # fmt: skip
    jobs = run_jobs(client, assess, "assess (embed + score)", log)
    result.assessments = {n: j["result"] for n, j in zip(names, jobs, strict=True)}
    if cfg.baselines:  # on the embeddings assess stored; the comparison then includes them
        scores = [{"type": "score", "model_id": model["id"], "dataset_id": result.datasets[n],
                   "measures": list(cfg.baselines)} for n in names]  # fmt: skip
        run_jobs(client, scores, "score the transferability baselines", log)
    _finetune(client, result, cfg.train_tasks, cfg, log)
    result.first_matrix = _matrix(client, result)
    _fit(client, result)
    comparison_params = {"base_model_id": model["id"], "method": "full"}
    result.comparison = client.request("GET", "/v1/comparisons", params=comparison_params)
    _predict(client, result, cfg.held_out_tasks)
    _finetune(client, result, cfg.held_out_tasks, cfg, log)
    result.matrix = _matrix(client, result)
    return result
