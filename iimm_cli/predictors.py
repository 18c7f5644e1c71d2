"""`iimm predictors fit|show|list|predict` and `iimm assess` over the API."""

from __future__ import annotations

import argparse
import re
from typing import Any

from iimm_cli._common import print_json, print_table
from iimm_cli.client import ApiClient, add_client_args

#: The values of the assess job's and `GET /v1/rankings`' `by` (the API's RankBy).
BY = ("best", "iimm", "zero_shot")
#: Beside the headline gain of an assess document: key, the measure it predicts from.
BESIDE = (("gain_from_zero_shot_accuracy", "zero_shot_accuracy"), ("gain_from_iimm", "iimm"))

#: A stale predictor's refit request, given after its `iimm predictors fit` command.
_REFIT_REQUEST = re.compile(r" \(POST /v1/predictors \{[^{}]*\}\)")


def cli_why(sentence: str) -> str:
    """A `ranked_by` / `predicted_by` sentence as printed: its pointer to the `stale_reason`
    field points at the STALE line printed after it."""
    return sentence.replace("see stale_reason", "see STALE below")


def cli_stale(reason: str) -> str:
    """A `stale_reason` as printed: the refit's `iimm predictors fit` command without the
    API request it also gives."""
    return _REFIT_REQUEST.sub("", reason)


def _stale_mark(text: str, prediction: dict[str, Any]) -> str:
    """A prediction shown beside the headline one, marked when its predictor is stale."""
    return f"{text} (stale)" if prediction.get("stale") else text


STATS = ("model_form", "n", "slope", "slope_se", "intercept", "intercept_se", "r_squared",
         "slope_pvalue", "pearson_r", "spearman_rho", "spearman_pvalue", "loo_rmse",
         "residual_sd", "breakpoint", "plateau")  # fmt: skip


def register(sub: Any) -> None:
    """Add the `predictors` subcommands and `assess`."""
    p = sub.add_parser("predictors", help="fit gain/forgetting on IIMM and predict")
    psub = p.add_subparsers(dest="predictors_command", required=True)
    fit = psub.add_parser("fit", help="fit a predictor from the fine-tuned tasks")
    fit.add_argument("--base-model-id", required=True)
    fit.add_argument("--method", required=True)
    fit.add_argument("--feature", default="iimm")
    fit.add_argument("--target", choices=("gain", "ood_change"), default="gain")
    fit.add_argument("--dataset-id", action="append", dest="dataset_ids", help="repeatable")
    fit.add_argument("--piecewise", choices=("auto", "never"), default="auto")
    _common(fit, run_fit)
    show = psub.add_parser("show", help="one predictor")
    show.add_argument("id")
    _common(show, run_show)
    ls = psub.add_parser("list", help="the project's predictors")
    ls.add_argument("--base-model-id")
    _common(ls, run_list)
    pred = psub.add_parser("predict", help="predict for a dataset or a raw feature value")
    pred.add_argument("id")
    pred.add_argument("--dataset-id")
    pred.add_argument("--feature-value", type=float)
    pred.add_argument("--zero-shot-accuracy", type=float)
    pred.add_argument(
        "--level", type=float, default=0.95,
        help="level of the prediction interval, in (0, 1) (default 0.95: a 95%% interval)",
    )  # fmt: skip
    _common(pred, run_predict)
    a = sub.add_parser("assess", help="embed, score and predict for a new task (a job)")
    a.add_argument("--model-id", required=True)
    a.add_argument("--dataset-id", required=True)
    a.add_argument("--bootstrap", type=int, default=200)
    a.add_argument(
        "--by", choices=BY, default="best",
        help="the gain predictor each method leads with, as `iimm rankings --by`: best (the "
        "measure the comparison of the base model and method ranks highest; IIMM without a "
        "comparison), iimm or zero_shot; the others are printed beside it",
    )  # fmt: skip
    a.add_argument("--no-wait", action="store_true", help="print the job and return")
    _common(a, run_assess)


def _common(parser: argparse.ArgumentParser, handler: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print the full JSON")
    add_client_args(parser)
    parser.set_defaults(handler=handler)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "n/a" if value is None else str(value)


def _print_predictor(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(body)
        return
    head = f"{body['target']} ~ {body['feature']} ({body['method']})"
    rows = [("id", body["id"]), ("fit", head)]
    rows += [(k, _fmt(body.get(k))) for k in STATS if body.get(k) is not None]
    rng = body["fitted_range"]
    rows += [("fitted range", f"[{_fmt(rng['min'])}, {_fmt(rng['max'])}]"),
             ("datasets", ", ".join(body["datasets"]))]  # fmt: skip
    if body.get("stale"):
        rows.append(("stale", body.get("stale_reason") or "yes"))
    print_table(rows, ("statistic", "value"))


def run_fit(args: argparse.Namespace) -> int:
    """Fit and print a predictor."""
    body = {k: getattr(args, k) for k in ("base_model_id", "method", "feature", "target",
                                          "piecewise")}  # fmt: skip
    if args.dataset_ids:
        body["dataset_ids"] = args.dataset_ids
    _print_predictor(ApiClient.from_args(args).request("POST", "/v1/predictors", json=body),
                     args.json)  # fmt: skip
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one predictor."""
    client = ApiClient.from_args(args)
    _print_predictor(client.request("GET", f"/v1/predictors/{args.id}"), args.json)
    return 0


def _staleness(p: dict[str, Any]) -> str:
    """The list's stale column: `no`, the predictor a refit already gave (`refitted_as`), or
    how many of its points changed."""
    if p.get("stale") and p.get("refitted_as"):
        return f"superseded by {p['refitted_as']}"
    if not p.get("stale"):
        return "no"
    n = p.get("changed_points")
    return f"yes: {n} point(s) changed" if n else "yes"


def run_list(args: argparse.Namespace) -> int:
    """Print the project's predictors (first page)."""
    params = {"base_model_id": args.base_model_id} if args.base_model_id else {}
    items = ApiClient.from_args(args).request("GET", "/v1/predictors", params=params)["items"]
    if args.json:
        print_json(items)
    else:
        rows = [(p["id"], f"{p['target']} ~ {p['feature']} ({p['method']}), n={p['n']}, "
                          f"R²={_fmt(p['r_squared'])}", _staleness(p)) for p in items]  # fmt: skip
        print_table(rows, ("predictor", "fit", "stale"))
        if any(p.get("stale") for p in items):
            print("a stale predictor's refit: iimm predictors show ID")
    return 0


def _num(value: float | None) -> str:
    """A number as the rest of the CLI prints one: 3 decimals."""
    return "n/a" if value is None else f"{value:.3f}"


def _interval(item: dict[str, Any] | None, mark: str = "") -> str:
    """`value  [lower, upper]` at 3 decimals, then `mark` (e.g. the extrapolation mark)."""
    if item is None:
        return "n/a"
    return f"{_num(item['value'])}  [{_num(item['lower'])}, {_num(item['upper'])}]{mark}"


#: Put after a prediction whose feature value lies outside the predictor's fitted range (the
#: mark `iimm demo`'s report uses too).
EXTRAPOLATED = "  † extrapolated"
EXTRAPOLATED_NOTE = (
    "† extrapolated: the task's feature lies outside the range the predictor was fitted on, "
    "so the line is carried beyond its data; trust it less."
)


def _mark(extrapolated: bool) -> str:
    return EXTRAPOLATED if extrapolated else ""


def _pred(p: dict[str, Any] | None) -> str:
    """A prediction's interval, marked when it is extrapolated."""
    return "n/a" if p is None else _interval(p["prediction"], _mark(bool(p.get("extrapolated"))))


def run_predict(args: argparse.Namespace) -> int:
    """Predict with a predictor and print the interval."""
    body: dict[str, Any] = {"level": args.level}
    for key in ("dataset_id", "feature_value", "zero_shot_accuracy"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    out = ApiClient.from_args(args).request(
        "POST", f"/v1/predictors/{args.id}/predictions", json=body
    )
    if args.json:
        print_json(out)
        return 0
    rows = [(out["feature"], _fmt(out["feature_value"])),
            (out["target"], _interval(out["prediction"])),
            ("finetuned accuracy", _interval(out.get("finetuned_accuracy"))),
            ("extrapolated", str(out["extrapolated"]))]  # fmt: skip
    print_table(rows, ("quantity", f"value [{out['prediction']['level']:.0%} interval]"))
    return 0


def format_assess(doc: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """An assess document's table rows and the lines printed after it (per method which
    predictor the gain comes from and why, which is stale, the extrapolation legend)."""
    rows = [("zero-shot accuracy", _num(doc["zero_shot_accuracy"])),
            ("iimm", f"{_num(doc['iimm']['value'])}  [{_num(doc['iimm']['ci_low'])}, "
                     f"{_num(doc['iimm']['ci_high'])}]")]  # fmt: skip
    notes: list[str] = []
    marked = False
    for method, entry in doc["methods"].items():
        gain = entry["gain"]
        source = f" (from {gain['feature']})" if gain else ""
        far = bool(gain and gain.get("extrapolated"))
        beside = [(feature, entry[key]) for key, feature in BESIDE if entry.get(key)]
        ood = entry["ood_change"]
        rows.append((f"{method}: gain{source}", _pred(gain)))
        rows += [(f"{method}: gain (from {feature})", _stale_mark(_pred(p), p))
                 for feature, p in beside]  # fmt: skip
        rows.append((f"{method}: finetuned accuracy{source}",
                     _interval(entry["finetuned_accuracy"], _mark(far))))  # fmt: skip
        rows += [(f"{method}: finetuned accuracy (from {feature})",
                  _stale_mark(_interval(p["finetuned_accuracy"],
                                        _mark(bool(p.get("extrapolated")))), p))
                 for feature, p in beside if p.get("finetuned_accuracy")]  # fmt: skip
        rows.append((f"{method}: ood_change (<0: forgotten)", _pred(ood)))
        marked = (marked or far or bool(ood and ood.get("extrapolated"))
                  or any(bool(p.get("extrapolated")) for _, p in beside))  # fmt: skip
        if entry.get("predicted_by"):
            notes.append(f"{method}: gain {cli_why(entry['predicted_by'])}")
        if entry.get("ood_change_by"):
            notes.append(f"{method}: {cli_why(entry['ood_change_by'])}")
        if entry.get("stale"):
            why = cli_stale(entry.get("stale_reason") or "refit its predictors")
            notes.append(f"{method}: STALE: {why}")
    if marked:
        notes.append(EXTRAPOLATED_NOTE)
    return rows, notes


def run_assess(args: argparse.Namespace) -> int:
    """Submit an assess job, wait, and print its document."""
    client = ApiClient.from_args(args)
    body = {"type": "assess", "model_id": args.model_id, "dataset_id": args.dataset_id,
            "bootstrap": args.bootstrap, "by": getattr(args, "by", "best")}  # fmt: skip
    job = client.request("POST", "/v1/jobs", json=body)
    if not args.no_wait:
        job = client.wait_job(job["id"], bar=True)
    if args.json or job["status"] != "succeeded":
        print_json(job)
        return 0 if job["status"] in ("succeeded", "queued", "running") else 1
    doc = job["result"]
    rows, notes = format_assess(doc)
    level = next((e["gain"]["prediction"]["level"] for e in doc["methods"].values()
                  if e.get("gain")), None)  # fmt: skip
    head = f"value [{level:.0%} interval]" if level else "value [interval]"
    print_table(rows, ("quantity", head))
    for line in notes:
        print(line)
    return 0
