"""`iimm predictors fit|show|list|predict` and `iimm assess` over the API."""

from __future__ import annotations

import argparse
from typing import Any

from iimm_cli._common import print_json, print_table
from iimm_cli.client import ApiClient, add_client_args

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
    pred.add_argument("--level", type=float, default=0.95)
    _common(pred, run_predict)
    a = sub.add_parser("assess", help="embed, score and predict for a new task (a job)")
    a.add_argument("--model-id", required=True)
    a.add_argument("--dataset-id", required=True)
    a.add_argument("--bootstrap", type=int, default=200)
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


def run_list(args: argparse.Namespace) -> int:
    """Print the project's predictors (first page)."""
    params = {"base_model_id": args.base_model_id} if args.base_model_id else {}
    items = ApiClient.from_args(args).request("GET", "/v1/predictors", params=params)["items"]
    if args.json:
        print_json(items)
    else:
        rows = [(p["id"], f"{p['target']} ~ {p['feature']} ({p['method']}), n={p['n']}, "
                          f"R²={_fmt(p['r_squared'])}") for p in items]  # fmt: skip
        print_table(rows, ("predictor", "fit"))
    return 0


def _interval(item: dict[str, Any] | None) -> str:
    if item is None:
        return "n/a"
    return f"{_fmt(item['value'])}  [{_fmt(item['lower'])}, {_fmt(item['upper'])}]"


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


def run_assess(args: argparse.Namespace) -> int:
    """Submit an assess job, wait, and print its document."""
    client = ApiClient.from_args(args)
    body = {"type": "assess", "model_id": args.model_id, "dataset_id": args.dataset_id,
            "bootstrap": args.bootstrap}  # fmt: skip
    job = client.request("POST", "/v1/jobs", json=body)
    if not args.no_wait:
        job = client.wait_job(job["id"], bar=True)
    if args.json or job["status"] != "succeeded":
        print_json(job)
        return 0 if job["status"] in ("succeeded", "queued", "running") else 1
    doc = job["result"]
    rows = [("zero-shot accuracy", _fmt(doc["zero_shot_accuracy"])),
            ("iimm", f"{_fmt(doc['iimm']['value'])}  [{_fmt(doc['iimm']['ci_low'])}, "
                     f"{_fmt(doc['iimm']['ci_high'])}]")]  # fmt: skip
    for method, entry in doc["methods"].items():
        gain, ood_change = entry["gain"], entry["ood_change"]
        baseline = entry.get("gain_from_zero_shot_accuracy")
        feature = f" (from {gain['feature']})" if gain else ""
        rows += [
            (f"{method}: gain{feature}", _interval(gain and gain["prediction"])),
            *(
                [(f"{method}: gain (from zero_shot_accuracy)", _interval(baseline["prediction"]))]
                if baseline
                else []
            ),
            (f"{method}: finetuned accuracy", _interval(entry["finetuned_accuracy"])),
            (
                f"{method}: ood_change (<0: forgotten)",
                _interval(ood_change and ood_change["prediction"]),
            ),
        ]
    print_table(rows, ("quantity", "value [interval]"))
    return 0
