"""Figures over real HTTP, on both stacks: a predictor's fit and the accuracy matrix as SVG
(the same numbers as their JSON), and the dashboard page, whose script is run by Node
against the running service with a minimal DOM."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.dashboard.page import JS
from tests.service.stack import Stack
from tests.service.test_api import assert_problem
from tests.service.test_predictors_api import _name, new_project, plant, plant_saturating

NS = {"s": "http://www.w3.org/2000/svg"}
SVG = "image/svg+xml"


@pytest.fixture(scope="module")
def project(stack: Stack) -> Any:
    """A project with 5 tasks fine-tuned with `full` (a linear and a hinge predictor) and
    the same base model fine-tuned on 2 of them with `lora` (a second matrix)."""
    key, project_id, c = new_project(stack)
    seed = plant(stack, c, key, project_id, [0.1, 0.2, 0.3, 0.45, 0.6], seed_no=3)
    from tests.service.test_predictors_api import add_finetuned, db

    with db(stack) as s:
        for d in seed.datasets[:2]:
            add_finetuned(s, seed, d, {j: 0.5 for j in seed.datasets}, "lora")
    line = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full",
                                          "piecewise": "never"}).json()  # fmt: skip
    yield key, seed, c, line
    c.close()


def _names(c: httpx.Client, ids: list[str]) -> dict[str, str]:
    return {i: c.get(f"/v1/datasets/{i}").json()["name"] for i in ids}


def test_predictor_figure_holds_its_points_and_line(project: Any) -> None:
    _, _, c, line = project
    resp = c.get(f"/v1/predictors/{line['id']}", params={"format": "svg"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith(SVG)
    declared = c.get(f"/v1/predictors/{line['id']}/svg")  # the operation of its own
    assert declared.headers["content-type"].startswith(SVG) and declared.text == resp.text
    root = ET.fromstring(resp.text)
    names = _names(c, line["datasets"])
    got = sorted((p.get("data-name"), float(p.get("data-x")), float(p.get("data-y")))
                 for p in root.findall(".//s:circle[@class='point']", NS))  # fmt: skip
    want = sorted((names[p["dataset_id"]], p["x"], p["y"]) for p in line["points"])
    assert got == want and len(got) == line["n"] == 5
    (fit,) = root.findall(".//s:polyline[@class='fit']", NS)
    ends = [tuple(map(float, xy.split(","))) for xy in fit.get("data-points").split()]
    lo, hi = line["fitted_range"]["min"], line["fitted_range"]["max"]
    a, b = line["intercept"], line["slope"]
    assert ends == [(lo, a + b * lo), (hi, a + b * hi)]
    # the 95% prediction band holds the line and widens away from the data's centre; the
    # fitted range is marked at its two ends
    (band,) = root.findall(".//s:polygon[@class='band']", NS)
    triples = [tuple(map(float, t.split(","))) for t in band.get("data-band").split()]
    assert all(low < a + b * x < up for x, low, up in triples)
    widths = [up - low for _, low, up in triples]
    assert widths[0] > min(widths) < widths[-1]
    edges = {e.get("data-edge"): float(e.get("data-value"))
             for e in root.findall(".//s:line[@class='fitted-range']", NS)}  # fmt: skip
    assert edges == {"min": lo, "max": hi}
    # names, not ids: the base model and datasets by name; the fit told apart by date and id
    texts = _texts(root)
    model = c.get(f"/v1/models/{line['base_model_id']}").json()["name"]
    assert model in texts[0] and "full" in texts[0] and line["id"] in texts[1]
    assert not [t for t in texts if "dst_" in t or "mdl_" in t]
    assert {"fine-tuned task", "fit", "95% prediction interval", "fitted range"} <= set(texts)
    # Accept negotiates the same figure; JSON stays the default
    assert c.get(f"/v1/predictors/{line['id']}", headers={"Accept": SVG}).text == resp.text
    assert c.get(f"/v1/predictors/{line['id']}").json()["id"] == line["id"]
    assert_problem(c.get(f"/v1/predictors/{line['id']}", params={"format": "png"}), 422)


def _texts(root: ET.Element) -> list[str]:
    """The visible strings of a figure, in document order."""
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_a_hinge_is_drawn_as_a_hinge(stack: Stack) -> None:
    key, project_id, c = new_project(stack)
    with c:
        seed = plant_saturating(stack, c, key, project_id)
        body = c.post("/v1/predictors", json={"base_model_id": seed.model_id, "method": "full"})
        p = body.json()
        assert p["model_form"] == "piecewise", p
        root = ET.fromstring(c.get(f"/v1/predictors/{p['id']}", params={"format": "svg"}).text)
        (fit,) = root.findall(".//s:polyline[@class='fit']", NS)
        pts = [tuple(map(float, xy.split(","))) for xy in fit.get("data-points").split()]
        lo, hi = p["fitted_range"]["min"], p["fitted_range"]["max"]
        assert [x for x, _ in pts] == [lo, p["breakpoint"], hi]
        assert pts[1][1] == pytest.approx(p["plateau"]) and pts[2][1] == pytest.approx(p["plateau"])
        assert pts[0][1] == pytest.approx(p["intercept"] + p["slope"] * lo)


def test_matrix_heat_map_holds_the_matrix(project: Any) -> None:
    _, seed, c, _ = project
    params = {"base_model_id": seed.model_id, "method": "full"}
    matrix = c.get("/v1/matrices", params=params).json()
    resp = c.get("/v1/matrices", params={**params, "format": "svg"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith(SVG)
    root = ET.fromstring(resp.text)
    rects = [r for r in root.findall(".//s:rect", NS) if "cell" in (r.get("class") or "")]
    cells = {(int(r.get("data-row")), int(r.get("data-col"))): r for r in rects}
    columns = [d["id"] for d in matrix["datasets"]]
    rows = [matrix["zero_shot"]] + [r["accuracies"] for r in matrix["rows"]]
    assert set(cells) == {(i, j) for i in range(len(rows)) for j in range(len(columns))}
    for (i, j), rect in cells.items():
        want = rows[i].get(columns[j])
        if want is None:
            assert rect.get("class") == "cell missing"
        else:
            assert float(rect.get("data-value")) == want
    texts = _texts(root)
    for r in matrix["rows"]:
        assert r["train_dataset_name"] in texts and f"G {r['gain']:+.2f}" in " ".join(texts)
    # axes named, in-domain cells outlined, a colour scale and a key for blank cells
    assert {"training dataset", "evaluation dataset (test split)"} <= set(texts)
    outlined = {(int(r.get("data-row")), int(r.get("data-col")))
                for r in root.findall(".//s:rect[@class='highlight']", NS)}  # fmt: skip
    assert outlined == {(i + 1, columns.index(r["train_dataset_id"]))
                        for i, r in enumerate(matrix["rows"])}  # fmt: skip
    assert root.find(".//s:rect[@class='colour-scale']", NS) is not None
    assert [float(t.get("data-value")) for t in root.findall(".//s:line[@class='scale-tick']", NS)
            ] == [0.0, 0.25, 0.5, 0.75, 1.0]  # fmt: skip
    assert any(t.startswith("not evaluated") for t in texts)
    model = c.get(f"/v1/models/{seed.model_id}").json()["name"]
    assert model in texts[0] and not [t for t in texts if "dst_" in t or "mdl_" in t]
    accept = c.get("/v1/matrices", params=params, headers={"Accept": SVG})
    assert accept.text == resp.text == c.get("/v1/matrices/svg", params=params).text


def test_figures_keep_projects_apart(stack: Stack, project: Any) -> None:
    _, seed, _, line = project
    with stack.client(stack.new_key(_name("other"))) as other:
        assert_problem(other.get(f"/v1/predictors/{line['id']}", params={"format": "svg"}), 404)
        resp = other.get("/v1/matrices", params={"base_model_id": seed.model_id,
                                                 "format": "svg"})  # fmt: skip
        assert resp.status_code == 404
    with httpx.Client(base_url=stack.url) as anonymous:
        assert anonymous.get(f"/v1/predictors/{line['id']}?format=svg").status_code == 401


def test_dashboard_page_and_its_assets(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url) as c:  # the page needs no key and holds no data
        page = c.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "blob:" in csp
        assert '<script src="/dashboard/app.js"' in page.text and "<script>" not in page.text
        js = c.get("/dashboard/app.js")
        assert js.headers["content-type"].startswith("text/javascript") and js.text == JS
        assert c.get("/dashboard/app.css").headers["content-type"].startswith("text/css")


HARNESS = r"""
// A minimal DOM (elements with the properties app.js uses) and fetch against the service.
const base = process.argv[2], key = process.argv[3];
class El {
  constructor(tag) {
    this.tag = tag; this.children = []; this.textContent = ""; this.className = "";
  }
  appendChild(c) { this.children.push(c); return c; }
  replaceChildren() { this.children = []; }
  toJSON() { return { tag: this.tag, cls: this.className, text: this.textContent,
                      src: this.src, alt: this.alt, children: this.children }; }
}
const ids = { status: new El("p"), predictors: new El("div"), matrices: new El("div"),
              comparisons: new El("div") };
const doc = { createElement: (t) => new El(t), getElementById: (i) => ids[i] };
const app = require(process.argv[4]);
const seen = [];
const fetchAbs = async (path, opts) => {
  seen.push(path);
  const resp = await fetch(base + path, opts);
  if (path.includes("format=svg")) {  // keep what the image would show
    const text = await resp.clone().text();
    seen.push(text.startsWith("<svg") ? "svg" : `not svg: ${resp.status}`);
  }
  return resp;
};
app.show(doc, app.makeClient(key, fetchAbs)).then(() => {
  console.log(JSON.stringify({ ids, seen }));
});
"""


def _beside_order(predictors: list[dict[str, Any]]) -> list[str]:
    """Predictor ids in the API's order, each zero-shot-accuracy one moved right after the
    last IIMM one of its (base model, method, target)."""

    def group(p: dict[str, Any]) -> tuple[str, str, str]:
        return p["base_model_id"], p["method"], p["target"]

    iimm = [p for p in predictors if p["feature"] == "iimm"]
    last = {group(p): p["id"] for p in iimm}
    moved = [p for p in predictors if p["feature"] == "zero_shot_accuracy" and group(p) in last]
    out = []
    for p in predictors:
        if p in moved:
            continue
        out.append(p["id"])
        if last.get(group(p)) == p["id"]:
            out += [z["id"] for z in moved if group(z) == group(p)]
    return out


def _stats(p: dict[str, Any]) -> str:
    return (f"r {p['pearson_r']:+.2f} · p {p['slope_pvalue']:.3f} · "
            f"LOO RMSE {p['loo_rmse']:.3f}")  # fmt: skip


def test_dashboard_script_shows_every_figure(stack: Stack, project: Any, tmp_path: Path) -> None:
    """The page's own script, run by Node against the live API with the project's key:
    one card with an image per predictor (the zero-shot-accuracy predictor beside the IIMM
    one), one per (base model, method) matrix, and per matrix the comparison of every
    measure with the best one named."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    key, seed, c, line = project
    body = {"base_model_id": seed.model_id, "method": "full", "feature": "zero_shot_accuracy",
            "piecewise": "never"}  # fmt: skip
    zs = c.post("/v1/predictors", json=body).json()
    (tmp_path / "app.js").write_text(JS)
    (tmp_path / "harness.js").write_text(HARNESS)
    done = subprocess.run([node, str(tmp_path / "harness.js"), stack.url, key,
                           str(tmp_path / "app.js")], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    listed = c.get("/v1/predictors").json()["items"]
    by_id = {p["id"]: p for p in listed}
    predictors = [by_id[i] for i in _beside_order(listed)]
    cards = out["ids"]["predictors"]["children"]
    assert len(cards) == len(predictors) >= 2
    model = c.get(f"/v1/models/{seed.model_id}").json()["name"]
    for card, p in zip(cards, predictors, strict=True):
        title, meta, *beside, img = card["children"]
        assert title["text"] == f"G vs {p['feature']} · {p['method']} · {model}"
        assert p["id"] in meta["text"] and p["created_at"][:10] in meta["text"]
        assert meta["text"].endswith(_stats(p)) and f"n = {p['n']}" in meta["text"]
        assert img["tag"] == "img" and img["src"].startswith("blob:")
        if p["feature"] == "iimm":  # the baseline it must beat, beside it
            assert [b["text"] for b in beside] == [
                f"beside it, zero-shot accuracy as the feature ({zs['id']}): n = {zs['n']} · "
                f"{_stats(zs)}"
            ]
        else:
            assert beside == []
    order = [p["id"] for p in predictors]
    assert order.index(zs["id"]) == order.index(line["id"]) + 1
    matrices = out["ids"]["matrices"]["children"]
    assert [m["children"][0]["text"] for m in matrices] == [f"full · {model}", f"lora · {model}"]
    assert all(m["children"][2]["src"].startswith("blob:") for m in matrices)
    assert out["seen"].count("svg") == len(predictors) + 2 and not [
        s for s in out["seen"] if s.startswith("not svg")
    ]
    assert out["ids"]["status"]["text"] == f"{len(predictors)} predictor(s), 2 matrix(es)."
    full, lora = out["ids"]["comparisons"]["children"]
    assert [full["children"][0]["text"], lora["children"][0]["text"]] == [
        f"full · {model}", f"lora · {model}"]  # fmt: skip
    compared = c.get("/v1/comparisons", params={"base_model_id": seed.model_id,
                                                "method": "full"}).json()  # fmt: skip
    _, verdict, table = full["children"]
    assert verdict["text"] == f"best measure: {compared['best_measure']} · {compared['verdict']}"
    head, *rows = table["children"]
    assert [h["text"] for h in head["children"]] == ["measure", "ρ vs G", "p", "R²", "ρ vs acc ft"]
    assert [r["children"][0]["text"] for r in rows] == [m["measure"] for m in compared["items"]]
    for r, m in zip(rows, compared["items"], strict=True):
        assert r["children"][1]["text"] == f"{m['spearman_gain']:+.2f}"
        assert ("baseline" in r["cls"]) == (m["measure"] in ("iimm", "zero_shot_accuracy"))
    assert "best" in rows[0]["cls"].split() and not any("best" in r["cls"] for r in rows[1:])
    # two lora tasks are too few to compare: the API's problem, not an empty table
    _, problem = lora["children"]
    assert problem["cls"] == "error" and problem["text"].startswith("422")
    bad = subprocess.run([node, str(tmp_path / "harness.js"), stack.url, "wrong-key",
                          str(tmp_path / "app.js")], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    status = json.loads(bad.stdout)["ids"]["status"]
    assert status["cls"] == "error" and status["text"].startswith("401")


def test_dashboard_puts_the_reference_model_first_and_guides_an_empty_project(
    stack: Stack, tmp_path: Path
) -> None:
    """Predictors and matrices of the model registered with the `reference` preset come first
    (order otherwise kept); a project with neither gets the getting-started line, not an
    empty page."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "app.js").write_text(JS)
    order = subprocess.run(
        [node, "-e", """
const app = require(process.argv[1]);
const items = [{id: "p1", m: "a"}, {id: "p2", m: "ref"}, {id: "p3", m: "b"}, {id: "p4", m: "ref"}];
const ordered = app.referenceFirst(items, new Set(["ref"]), (x) => x.m);
console.log(JSON.stringify(ordered.map((x) => x.id)));
""", str(tmp_path / "app.js")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert order.returncode == 0, order.stderr
    assert json.loads(order.stdout) == ["p2", "p4", "p1", "p3"]

    (tmp_path / "harness.js").write_text(HARNESS)
    key = stack.new_key(_name("empty"))
    done = subprocess.run([node, str(tmp_path / "harness.js"), stack.url, key,
                           str(tmp_path / "app.js")], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout)["ids"]
    [start] = ids["predictors"]["children"]
    assert start["cls"] == "getting-started" and "make demo" in start["text"]
    assert "iimm demo" in start["text"] and ids["matrices"]["children"] == []
    assert ids["status"]["text"] == "0 predictor(s), 0 matrix(es)."


def test_dashboard_puts_each_zero_shot_predictor_beside_its_iimm_one(tmp_path: Path) -> None:
    """On hand-made predictor lists: a zero-shot-accuracy predictor follows the last IIMM
    predictor of its base model, method and target (others keep their order, one with no
    IIMM partner stays where it was); an IIMM predictor without a partner says how to fit
    one."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "app.js").write_text(JS)
    done = subprocess.run(
        [node, "-e", """
const app = require(process.argv[1]);
const p = (id, m, f, t = "gain", method = "full") =>
  ({id, base_model_id: m, method, feature: f, target: t, created_at: id, n: 5,
    pearson_r: -0.5, slope_pvalue: 0.25, loo_rmse: 0.125});
const items = [p("p1", "a", "zero_shot_accuracy"), p("p2", "a", "iimm"), p("p3", "b", "iimm"),
  p("p4", "a", "iimm", "ood_change"), p("p5", "a", "iimm"), p("p6", "a", "logme"),
  p("p7", "b", "zero_shot_accuracy", "gain", "lora"), p("p8", "a", "zero_shot_accuracy")];
const ordered = app.zeroShotBeside(items).map((x) => x.id);
const base = app.zeroShotBaselines(items);
console.log(JSON.stringify({ordered, withZs: app.besideLine(items[1], base),
                            without: app.besideLine(items[2], base)}));
""", str(tmp_path / "app.js")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["ordered"] == ["p2", "p3", "p4", "p5", "p1", "p8", "p6", "p7"]
    assert out["withZs"] == (
        "beside it, zero-shot accuracy as the feature (p8): n = 5 · r -0.50 · p 0.250 · "
        "LOO RMSE 0.125"
    )
    assert "no zero-shot-accuracy predictor yet" in out["without"]


def test_dashboard_names_the_flagged_tasks_of_a_comparison(tmp_path: Path) -> None:
    """On hand-made comparison bodies: the tasks left out are counted and named by dataset
    name (the id when the name is unknown); none flagged, nothing added to the verdict."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "app.js").write_text(JS)
    done = subprocess.run(
        [node, "-e", """
const app = require(process.argv[1]);
const body = {best_measure: "iimm", verdict: "v", flagged: [
  {dataset_id: "dst_1", dataset_name: "mnist", reason: "r"},
  {dataset_id: "dst_2", dataset_name: null, reason: "r"}]};
console.log(JSON.stringify([app.comparisonText(body),
                            app.comparisonText({...body, flagged: []})]));
""", str(tmp_path / "app.js")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "best measure: iimm · v · 2 task(s) left out (mnist, dst_2): zero-shot error too "
        "small for a stable G",
        "best measure: iimm · v",
    ]


def test_dashboard_marks_a_stale_predictor(tmp_path: Path) -> None:
    """A stale predictor's card carries its reason; a current one's carries nothing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    (tmp_path / "app.js").write_text(JS)
    done = subprocess.run(
        [node, "-e", """
const app = require(process.argv[1]);
const reason = "3 newer evaluation(s) since fitted: refit with POST /v1/predictors";
console.log(JSON.stringify([app.staleLine({stale: true, stale_reason: reason}),
                            app.staleLine({stale: false, stale_reason: null})]));
""", str(tmp_path / "app.js")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "stale: 3 newer evaluation(s) since fitted: refit with POST /v1/predictors",
        None,
    ]
