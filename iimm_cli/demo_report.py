"""Printing what the demo's loop found: plain-text tables and one honest sentence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from iimm_cli.demo_loop import FEATURES, TARGETS, LoopResult


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.{digits}f}"


def _a(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned plain-text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def zero_shot_rows(result: LoopResult) -> list[list[str]]:
    """Task, group, zero-shot accuracy, chance, IIMM with its bootstrap interval."""
    from workers.ml.reference.suite import TASKS

    rows = []
    for name, doc in result.assessments.items():
        iimm = doc["iimm"]
        k = len(TASKS[name].classes)
        ci = f"[{_a(iimm.get('ci_low'))}, {_a(iimm.get('ci_high'))}]"
        rows.append([name, TASKS[name].group, _a(doc["zero_shot_accuracy"]), _a(1 / k),
                     f"{_a(iimm['value'])} {ci}"])  # fmt: skip
    return rows


def flag_note(row: dict[str, Any], zero_shot: dict[str, float]) -> str:
    """'' for an unflagged matrix row; else the flag and its reason in a few words (the API's
    `flag` says G divides by a zero-shot error below IIMM_MIN_ZERO_SHOT_ERROR)."""
    if not row.get("flag"):
        return ""
    zs = zero_shot.get(row["train_dataset_id"])
    error = "" if zs is None else f" {1 - zs:.3f}"
    return f"flagged: low zero-shot error{error}, G unstable, left out of the fits"


def matrix_rows(matrix: dict[str, Any]) -> list[list[str]]:
    """Training task, zero-shot and fine-tuned in-domain accuracy, G, ood change, flag."""
    rows = []
    for r in matrix["rows"]:
        d = r["train_dataset_id"]
        zs, ft = matrix["zero_shot"].get(d), r["accuracies"].get(d)
        name = (r.get("train_dataset_name") or d).rsplit("-", 1)[0]
        rows.append([name, _a(zs), _a(ft), _f(r["gain"]), _f(r["ood_change"]),
                     flag_note(r, matrix["zero_shot"])])  # fmt: skip
    return rows


def slope_interval(p: dict[str, Any], level: float = 0.95) -> tuple[float, float] | None:
    """The slope's two-sided `level` interval, slope ± t(n − 2)·se (as scipy's linregress)."""
    from scipy import stats

    if p["slope"] is None or p["slope_se"] is None or p["n"] < 3:
        return None
    t = float(stats.t.ppf(0.5 + level / 2, p["n"] - 2))
    return p["slope"] - t * p["slope_se"], p["slope"] + t * p["slope_se"]


def predictor_rows(result: LoopResult) -> list[list[str]]:
    """Feature, target, n, slope [95% CI], Pearson r, slope p-value, leave-one-out RMSE."""
    rows = []
    for feature in FEATURES:
        for target in TARGETS:
            p = result.predictors[(feature, target)]
            ci = slope_interval(p)
            ci_text = "" if ci is None else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"
            rows.append([
                feature, target, str(p["n"]), f"{_f(p['slope'], 2)}{ci_text}",
                _f(p["pearson_r"], 2), _a(p["slope_pvalue"]), _a(p["loo_rmse"]),
            ])  # fmt: skip
    return rows


def comparison_rows(comparison: dict[str, Any]) -> list[list[str]]:
    """The paper's Tables 1-3 on this model: each measure's n, ρ against G and fine-tuned acc."""
    return [
        [c["measure"], str(c["n"]), _f(c["spearman_gain"], 2), _a(c["spearman_gain_pvalue"]),
         _a(c["r_squared"]), _f(c["spearman_accuracy"], 2)]
        for c in comparison["items"]
    ]  # fmt: skip


def comparison_summary(result: LoopResult) -> str:
    """The comparison's best measure and verdict (the API's), and which tasks it covers: the
    ones fine-tuned before it was read, so not the held-out tasks (fine-tuned afterwards; the
    dashboard and a later GET /v1/comparisons include them and show a larger n)."""
    c = result.comparison
    names = {d: n for n, d in result.datasets.items()}
    covered = [names.get(d, d) for d in c.get("datasets", [])]
    held_out = [t for t in result.predictions if t not in covered]
    lines = [
        f"Best measure: {c.get('best_measure') or '-'}. "
        f"Verdict: {c.get('verdict') or 'none (too few tasks)'}",
        f"Covers n = {c.get('n_tasks', len(covered))} fine-tuned tasks "
        f"({', '.join(covered) or 'none'})",
    ]
    flagged = [names.get(f["dataset_id"], f["dataset_id"]) for f in c.get("flagged", [])]
    if flagged:
        lines.append(f"Left out, flagged (low zero-shot error): {', '.join(flagged)}")
    if held_out:
        lines.append(
            f"Not in it: the held-out tasks ({', '.join(held_out)}), fine-tuned after it was "
            "read; the dashboard and /v1/comparisons now include them, so their n is larger."
        )
    return "\n".join(lines)


EXTRAPOLATED = "†"


def _pred(p: dict[str, Any]) -> str:
    """Predicted value [interval], with `EXTRAPOLATED` when the API marks it extrapolated
    (the task's feature lies outside the range the predictor was fitted on)."""
    q = p["prediction"]
    mark = EXTRAPOLATED if p.get("extrapolated") else ""
    return f"{_f(q['value'], 2)} [{_f(q['lower'], 2)}, {_f(q['upper'], 2)}]{mark}"


def held_out_rows(result: LoopResult) -> list[list[str]]:
    """Held-out task: predicted G from IIMM and from zero-shot accuracy (`EXTRAPOLATED` marks
    a prediction outside the fitted range), G measured afterwards, and the matrix's flag."""
    matrix = result.matrix
    by_id = {r["train_dataset_id"]: r for r in matrix["rows"]}
    rows = []
    for task, per in result.predictions.items():
        row = by_id.get(result.datasets[task])
        measured = "-" if row is None else _f(row["gain"], 2)
        note = "" if row is None else flag_note(row, matrix["zero_shot"])
        rows.append([task, _pred(per["iimm:gain"]), _pred(per["zero_shot_accuracy:gain"]),
                     measured, note])  # fmt: skip
    return rows


HELD_OUT_LEGEND = (
    f"{EXTRAPOLATED} extrapolated: the task's feature lies outside the range the predictor was "
    "fitted on, so the line is carried beyond its data."
)


# tasks that share the corpus's words and differ in the images (domain, difficulty)
SAME_VOCABULARY = (
    "shapes", "outlined-shapes", "noisy-shapes", "compositions", "digits", "handwritten-digits",
)  # fmt: skip


def design_rows(result: LoopResult) -> list[list[str]]:
    """IIMM and zero-shot accuracy against G over every fine-tuned task without a flag, and
    over those that differ in image domain rather than vocabulary (Pearson r, p: scipy)."""
    from scipy import stats

    ids = {d: n for n, d in result.datasets.items()}
    gain = {ids[r["train_dataset_id"]]: r["gain"] for r in result.matrix["rows"]
            if not r.get("flag") and r["gain"] is not None}  # fmt: skip
    rows = []
    for label, tasks in (
        ("all tasks", list(gain)),
        ("same vocabulary, other images", [t for t in SAME_VOCABULARY if t in gain]),
    ):
        for feature in FEATURES:
            xs = [result.assessments[t]["iimm"]["value"] if feature == "iimm"
                  else result.assessments[t]["zero_shot_accuracy"] for t in tasks]  # fmt: skip
            ys = [gain[t] for t in tasks]
            fit = stats.linregress(xs, ys) if len(xs) >= 3 else None
            rows.append([label, feature, str(len(xs)), _f(fit and fit.rvalue, 2),
                         _a(fit and fit.pvalue), _f(fit and fit.slope, 2)])  # fmt: skip
    return rows


def honest_sentence(result: LoopResult) -> str:
    """One sentence on what this model shows, from the fitted predictors' own statistics."""
    iimm, zs = (
        result.predictors[("iimm", "gain")],
        result.predictors[("zero_shot_accuracy", "gain")],
    )

    def says(p: dict[str, Any]) -> str:
        r, pv = p["pearson_r"], p["slope_pvalue"]
        if r is None or pv is None:
            return "cannot be judged"
        verdict = "predicts G" if pv < 0.05 else "does not significantly predict G"
        return f"{verdict} (r {r:+.2f}, p {pv:.3f}, n {p['n']})"

    return (
        f"On this small reference model IIMM {says(iimm)} while zero-shot accuracy "
        f"{says(zs)}; with so few tasks, one model and one method this is an illustration "
        "of the loop, not evidence for or against the paper."
    )


TERMS = """Terms
  acc zs, acc ft  top-1 test accuracy (fraction correct) zero-shot and after fine-tuning
  G               gain on the task fine-tuned on, (acc_ft - acc_zs) / (1 - acc_zs): the share
                  of the zero-shot error fine-tuning removed (1 all of it, 0 none, < 0 worse)
  ood change      mean change in accuracy (acc_ft - acc_zs, fraction correct) on the other
                  tasks after fine-tuning on this one; negative = forgetting
  LOO RMSE        leave-one-out root-mean-square error of a predictor, in its target's units
                  (G for target gain, accuracy fraction for target ood_change)
  IIMM            inter-intra modal measure (the paper's), from the zero-shot embeddings
  baselines       transrate, sfda, emms, logme, hscore, gbc: transferability estimators, each
                  as its paper defines it, on the same embeddings (in the comparison only)"""


def print_report(result: LoopResult) -> None:
    """Print every table of the loop, then the honest sentence."""
    sections = [
        ("Zero-shot accuracy and IIMM [95% bootstrap CI] per task",
         ["task", "group", "zero-shot", "chance", "IIMM"], zero_shot_rows(result)),
        ("Accuracy matrix after fine-tuning (full, equal step budgets): in-domain accuracy, "
         "G and the out-of-domain change", ["trained on", "acc zs", "acc ft", "G", "ood change",
                                            ""], matrix_rows(result.first_matrix)),
        ("Predictors fitted on the fine-tuned tasks (slope with its 95% CI)",
         ["feature", "target", "n", "slope", "r", "p", "LOO RMSE"], predictor_rows(result)),
        ("Which measure predicts G best for this model and method (paper's Tables 1-3)",
         ["measure", "n", "ρ vs G", "p", "R²", "ρ vs acc ft"],
         comparison_rows(result.comparison)),
        ("Held-out tasks: predicted G [95% prediction interval] beside G measured afterwards",
         ["task", "from IIMM", "from zero-shot acc", "measured", ""], held_out_rows(result)),
        ("Every task fine-tuned: each measure against G (unflagged tasks; scipy's linregress)",
         ["tasks", "feature", "n", "r", "p", "slope"], design_rows(result)),
    ]  # fmt: skip
    print(f"\n{TERMS}")
    for title, headers, rows in sections:
        print(f"\n{title}\n{table(headers, rows)}")
        if title.startswith("Held-out") and any(EXTRAPOLATED in c for r in rows for c in r):
            print(HELD_OUT_LEGEND)
        if title.startswith("Which measure"):
            print(comparison_summary(result))
    print(f"\n{honest_sentence(result)}")
