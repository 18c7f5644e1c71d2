"""`iimm rankings`: base models and methods for a dataset, by predicted fine-tuned accuracy."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from iimm_cli._common import print_json, print_table
from iimm_cli.client import ApiClient, add_client_args
from iimm_cli.predictors import BY, EXTRAPOLATED_NOTE, _interval, _mark, cli_stale, cli_why


def register(sub: Any) -> None:
    """Add the `rankings` command."""
    p = sub.add_parser("rankings", help="rank base models and methods for a dataset")
    p.add_argument("--dataset-id", required=True)
    p.add_argument(
        "--by", choices=BY, default="best",
        help="the gain predictor to rank by: best (the measure the comparison of each base "
        "model and method ranks highest; IIMM without a comparison), iimm or zero_shot",
    )  # fmt: skip
    p.add_argument(
        "--level", type=float, default=0.95,
        help="level of the prediction intervals, in (0, 1) (default 0.95: 95%% intervals)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the full JSON")
    add_client_args(p)
    p.set_defaults(handler=run)


_FIT_AFTER = re.compile(r"fine-tune (\d+) tasks, then POST /v1/predictors")
_FIT = re.compile(r"POST /v1/predictors(?: \(feature '(\w+)'\))?")
_JOB = re.compile(r"POST /v1/jobs (\{.*?\})")


def _fit_command(item: dict[str, Any], feature: str | None = None) -> str:
    method = item.get("method") or "METHOD"
    extra = f" --feature {feature}" if feature else ""
    return f"`iimm predictors fit --base-model-id {item['base_model_id']} --method {method}{extra}`"


def _job_command(m: re.Match[str]) -> str:
    try:
        body = json.loads(m[1])
    except ValueError:
        return m[0]
    if body.get("type") == "assess" and {"model_id", "dataset_id"} <= set(body):
        return f"`iimm assess --model-id {body['model_id']} --dataset-id {body['dataset_id']}`"
    return m[0]


def cli_reason(item: dict[str, Any]) -> str:
    """An unranked item's `reason` with the API requests it names given as `iimm` commands:
    `POST /v1/predictors` as `iimm predictors fit --base-model-id ... --method ...`, an
    assess job's `POST /v1/jobs {...}` as `iimm assess --model-id ... --dataset-id ...`."""
    reason = str(item["reason"])
    reason = _FIT_AFTER.sub(
        lambda m: f"fit one with {_fit_command(item)} (after fine-tuning {m[1]} tasks)", reason
    )
    reason = _FIT.sub(lambda m: _fit_command(item, m[1]), reason)
    return _JOB.sub(_job_command, reason)


def _beside(p: dict[str, Any] | None) -> str:
    if p is None or p.get("finetuned_accuracy") is None:
        return "n/a"
    text = _interval(p["finetuned_accuracy"], _mark(bool(p.get("extrapolated"))))
    return f"{text} (stale)" if p.get("stale") else text


def format_ranking(body: dict[str, Any]) -> tuple[list[tuple[str, ...]], list[str]]:
    """The ranking's table rows and the lines printed after it (why each row is ranked by
    its predictor and whether that predictor is stale, the unranked models, the extrapolation
    legend)."""
    rows, notes, marked = [], [], False
    for item in body["items"]:
        far = bool(item["extrapolated"])
        zs, iimm = item.get("gain_from_zero_shot_accuracy"), item.get("gain_from_iimm")
        marked = marked or far or any(bool(p and p.get("extrapolated")) for p in (zs, iimm))
        own = _interval(item["finetuned_accuracy"], _mark(far))
        rows.append((
            str(item["rank"]), item["base_model_name"], item["method"], item["feature"],
            own if item["feature"] == "iimm" else _beside(iimm),
            own if item["feature"] == "zero_shot_accuracy" else _beside(zs),
            _interval(item.get("ood_change")),
        ))  # fmt: skip
        notes.append(f"{item['rank']}. {item['base_model_name']} ({item['method']}): "
                     f"{cli_why(item['ranked_by'])}")  # fmt: skip
        if item.get("ood_change_by"):
            notes.append(f"{item['rank']}. {cli_why(item['ood_change_by'])}")
        if item.get("stale"):
            notes.append(f"{item['rank']}. STALE: {cli_stale(item.get('stale_reason') or 'refit')}")
    for u in body["unranked"]:
        method = f" ({u['method']})" if u["method"] else ""
        notes.append(f"not ranked: {u['base_model_name']}{method}: {cli_reason(u)}")
    if marked:
        notes.append(EXTRAPOLATED_NOTE)
    return rows, notes


def run(args: argparse.Namespace) -> int:
    """Print the ranking of the project's base models and methods for a dataset."""
    params = {"dataset_id": args.dataset_id, "by": args.by, "level": args.level}
    body = ApiClient.from_args(args).request("GET", "/v1/rankings", params=params)
    if args.json:
        print_json(body)
        return 0
    rows, notes = format_ranking(body)
    if not rows:  # no table: say why and what to run
        print(f"{body['dataset_name']} ({body['dataset_id']}): nothing to rank.")
        if not body["unranked"]:
            print("no base model in this project: add one with `iimm models add ...`")
        for line in notes:
            print(line)
        return 0
    print(f"{body['dataset_name']} ({body['dataset_id']}), ranked by={body['by']}, "
          f"accuracy after fine-tuning [{body['level']:.0%} interval]:")  # fmt: skip
    print_table(rows, ("#", "base model", "method", "ranked by", "acc (from iimm)",
                       "acc (from zero_shot_accuracy)", "ood_change"))  # fmt: skip
    for line in notes:
        print(line)
    return 0
