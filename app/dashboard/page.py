"""The dashboard's three static files, kept as strings so that every install serves them.

The page holds no data and no key: it asks for a project API key (kept in the tab's
sessionStorage), reads the REST API with it and shows the API's own SVG figures as images
(blob URLs: an image cannot run script). Content-Security-Policy allows nothing else.
"""

from __future__ import annotations

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>IIMM dashboard</title>
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header>
  <h1>IIMM dashboard</h1>
  <form id="connect">
    <label>Project API key <input id="key" type="password" autocomplete="off" required></label>
    <button type="submit">Show</button>
  </form>
  <p id="status" role="status"></p>
</header>
<main>
  <section><h2>Predictors: gain (or forgetting) against a zero-shot measure</h2>
    <div id="predictors" class="grid"></div></section>
  <section><h2>Accuracy matrices</h2><div id="matrices" class="grid"></div></section>
  <section><h2>Which measure predicts G best (Spearman ρ over the fine-tuned tasks)</h2>
    <div id="comparisons" class="grid"></div></section>
</main>
</body>
</html>
"""

CSS = """body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { padding: 16px 24px; background: white; border-bottom: 1px solid #ddd; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 24px 24px 8px; }
form { display: flex; gap: 8px; align-items: center; }
input { width: 28em; padding: 4px; } #status { color: #555; margin: 8px 0 0; min-height: 1em; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; padding: 0 24px; }
.card { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 8px; }
.card { max-width: 680px; min-width: 0; }
.card h3 { font-size: 13px; margin: 0 0 2px; font-weight: 600; overflow-wrap: anywhere; }
.card .meta { font-size: 12px; color: #666; margin: 0 0 6px; overflow-wrap: anywhere; }
.card img { display: block; max-width: 100%; }
.card .beside { font-size: 12px; color: #333; margin: 0 0 6px; overflow-wrap: anywhere; }
.card table { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
.card th, .card td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
.card th:first-child, .card td:first-child { text-align: left; }
.card tr.best td { font-weight: 600; } .card tr.baseline td:first-child { color: #1f5fa8; }
.getting-started { margin: 0 24px; color: #444; } .error { color: #b00020; }
.card .stale { font-size: 12px; color: #b00020; margin: 0 0 6px; overflow-wrap: anywhere; }
"""

JS = """// IIMM dashboard: lists the project's predictors and fine-tuned (base model, method)
// pairs through the REST API and shows the API's SVG figure of each, the reference model's
// first, each IIMM predictor with the zero-shot-accuracy predictor (the baseline it must
// beat) beside it, and per pair the comparison of every measure (which predicts G best);
// an empty project gets a getting-started line instead.
"use strict";

const KEY = "iimm-api-key";

function predictorFigurePath(p) {
  return `/v1/predictors/${encodeURIComponent(p.id)}?format=svg`;
}

function matrixFigurePath(baseModelId, method) {
  const q = new URLSearchParams({ base_model_id: baseModelId, method, format: "svg" });
  return `/v1/matrices?${q}`;
}

// Unique (base model, method) pairs of fine-tuned models, sorted: one matrix each.
function matrixPairs(finetuned) {
  const seen = new Map();
  for (const m of finetuned) seen.set(`${m.base_model_id}\\u0000${m.method}`, m);
  return [...seen.keys()].sort().map((k) => {
    const [base, method] = k.split("\\u0000");
    return { base, method };
  });
}

async function problemText(resp) {
  try {
    const body = await resp.json();
    return `${resp.status}: ${body.detail || body.title || resp.statusText}`;
  } catch (e) {
    return `${resp.status}: ${resp.statusText}`;
  }
}

function makeClient(key, fetchImpl) {
  return (path) => fetchImpl(path, { headers: { Authorization: `Bearer ${key}` } });
}

// Every page of a cursor-paginated list.
async function listAll(get, path) {
  const items = [];
  let url = `${path}?limit=100`;
  for (let page = 0; page < 50; page++) {
    const resp = await get(url);
    if (!resp.ok) throw new Error(await problemText(resp));
    const body = await resp.json();
    items.push(...body.items);
    if (!body.next_cursor) return items;
    url = `${path}?limit=100&cursor=${encodeURIComponent(body.next_cursor)}`;
  }
  return items;
}

const TARGETS = { gain: "G", ood_change: "OOD change" };

// The project's models: names beside ids ({id: name}) and the ids registered with the
// `reference` preset (the dual encoder shipped with the package, registered by `iimm demo`).
async function projectModels(get) {
  const names = {};
  const reference = new Set();
  for (const m of await listAll(get, "/v1/models")) {
    names[m.id] = m.name;
    if (m.preset === "reference") reference.add(m.id);
  }
  return { names, reference };
}

// The reference model's items first (what a new user sees first); the order is otherwise kept.
function referenceFirst(items, reference, modelOf) {
  const isRef = (x) => reference.has(modelOf(x));
  return [...items.filter(isRef), ...items.filter((x) => !isRef(x))];
}

const GETTING_STARTED = "Nothing to show yet. Run `make demo` (or `iimm demo`): it registers " +
  "the reference model, fine-tunes it and fits its predictors; their figures then appear here " +
  "first.";

function predictorTitle(p, names) {
  const model = names[p.base_model_id] || p.base_model_id;
  return `${TARGETS[p.target] || p.target} vs ${p.feature} · ${p.method} · ${model}`;
}

// A number with `digits` decimals (a sign with `signed`), "–" when missing.
function num(v, digits, signed) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return (signed && v >= 0 ? "+" : "") + v.toFixed(digits);
}

// The figures two fits are compared by: Pearson r, the slope's p-value, leave-one-out RMSE.
function fitStats(p) {
  return `r ${num(p.pearson_r, 2, true)} · p ${num(p.slope_pvalue, 3)} · ` +
    `LOO RMSE ${num(p.loo_rmse, 3)}`;
}

// What tells two fits of the same kind apart: when, which, on how many tasks, how well.
function predictorMeta(p) {
  const when = String(p.created_at || "").slice(0, 16).replace("T", " ");
  return `fitted ${when} UTC · ${p.id} · n = ${p.n} · ${fitStats(p)}`;
}

// A stale predictor's warning (its data is out of date: datasets deleted, or evaluations of
// its matrix newer than its fit), null for a current one.
function staleLine(p) {
  if (!p.stale) return null;
  return `stale: ${p.stale_reason || "its data changed since it was fitted"}`;
}

const ZERO_SHOT = "zero_shot_accuracy";
const groupOf = (p) => `${p.base_model_id}\u0000${p.method}\u0000${p.target}`;

// Per (base model, method, target): the newest zero-shot-accuracy predictor.
function zeroShotBaselines(predictors) {
  const out = new Map();
  for (const p of predictors) {
    if (p.feature !== ZERO_SHOT) continue;
    const seen = out.get(groupOf(p));
    if (!seen || String(seen.created_at) <= String(p.created_at)) out.set(groupOf(p), p);
  }
  return out;
}

// Each zero-shot-accuracy predictor moved right after the last IIMM predictor of its base
// model, method and target, so that the two figures stand side by side; the order is
// otherwise kept.
function zeroShotBeside(predictors) {
  const withIimm = new Set(predictors.filter((p) => p.feature === "iimm").map(groupOf));
  const moved = predictors.filter((p) => p.feature === ZERO_SHOT && withIimm.has(groupOf(p)));
  const rest = predictors.filter((p) => !moved.includes(p));
  const lastIimm = new Map();
  for (const p of rest) if (p.feature === "iimm") lastIimm.set(groupOf(p), p);
  const out = [];
  for (const p of rest) {
    out.push(p);
    if (lastIimm.get(groupOf(p)) === p) out.push(...moved.filter((z) => groupOf(z) === groupOf(p)));
  }
  return out;
}

// The line under an IIMM predictor's title: the zero-shot-accuracy predictor of the same
// base model, method and target, or how to fit one.
function besideLine(p, baselines) {
  const z = baselines.get(groupOf(p));
  if (!z) {
    return "beside it: no zero-shot-accuracy predictor yet (POST /v1/predictors with " +
      "feature zero_shot_accuracy)";
  }
  return `beside it, zero-shot accuracy as the feature (${z.id}): n = ${z.n} · ${fitStats(z)}`;
}

function comparisonPath(baseModelId, method) {
  const q = new URLSearchParams({ base_model_id: baseModelId, method });
  return `/v1/comparisons?${q}`;
}

// One line per measure, the best first (as the API orders them); IIMM and zero-shot
// accuracy marked as the baselines a reader looks for.
function comparisonRows(body) {
  return body.items.map((m, i) => ({
    cls: [i === 0 ? "best" : "", ["iimm", ZERO_SHOT].includes(m.measure) ? "baseline" : ""]
      .filter(Boolean).join(" "),
    cells: [m.measure, num(m.spearman_gain, 2, true), num(m.spearman_gain_pvalue, 3),
      num(m.r_squared, 3), num(m.spearman_accuracy, 2, true)],
  }));
}

// The verdict, and the tasks left out (by dataset name, else id) because their zero-shot
// error is too small for a stable G.
function comparisonText(body) {
  const left = (body.flagged || []).map((f) => f.dataset_name || f.dataset_id);
  const flagged = left.length ? ` · ${left.length} task(s) left out (${left.join(", ")}): ` +
    "zero-shot error too small for a stable G" : "";
  return `best measure: ${body.best_measure} · ${body.verdict}${flagged}`;
}

function text(doc, tag, cls, content) {
  const el = doc.createElement(tag);
  el.className = cls;
  el.textContent = content;
  return el;
}

async function card(doc, get, title, meta, path, beside, warning) {
  const box = doc.createElement("div");
  box.className = "card";
  box.appendChild(text(doc, "h3", "", title));
  box.appendChild(text(doc, "p", "meta", meta));
  if (warning) box.appendChild(text(doc, "p", "stale", warning));
  if (beside) box.appendChild(text(doc, "p", "beside", beside));
  const resp = await get(path);
  if (!resp.ok) {
    const p = doc.createElement("p");
    p.className = "error";
    p.textContent = await problemText(resp);
    box.appendChild(p);
    return box;
  }
  const img = doc.createElement("img");
  img.alt = title;
  img.src = URL.createObjectURL(await resp.blob());
  box.appendChild(img);
  return box;
}

// The comparison of every measure for one (base model, method): the verdict and a table.
async function comparisonCard(doc, get, title, path) {
  const box = doc.createElement("div");
  box.className = "card";
  box.appendChild(text(doc, "h3", "", title));
  const resp = await get(path);
  if (!resp.ok) {
    box.appendChild(text(doc, "p", "error", await problemText(resp)));
    return box;
  }
  const body = await resp.json();
  box.appendChild(text(doc, "p", "meta", comparisonText(body)));
  const table = doc.createElement("table");
  const head = doc.createElement("tr");
  for (const h of ["measure", "ρ vs G", "p", "R²", "ρ vs acc ft"]) {
    head.appendChild(text(doc, "th", "", h));
  }
  table.appendChild(head);
  for (const row of comparisonRows(body)) {
    const tr = doc.createElement("tr");
    tr.className = row.cls;
    for (const c of row.cells) tr.appendChild(text(doc, "td", "", c));
    table.appendChild(tr);
  }
  box.appendChild(table);
  return box;
}

async function show(doc, get) {
  const status = doc.getElementById("status");
  const predictorsBox = doc.getElementById("predictors");
  const matricesBox = doc.getElementById("matrices");
  const comparisonsBox = doc.getElementById("comparisons");
  predictorsBox.replaceChildren();
  matricesBox.replaceChildren();
  comparisonsBox.replaceChildren();
  status.textContent = "Loading…";
  try {
    const { names, reference } = await projectModels(get);
    const predictors = zeroShotBeside(referenceFirst(
      await listAll(get, "/v1/predictors"), reference, (p) => p.base_model_id));
    const baselines = zeroShotBaselines(predictors);
    for (const p of predictors) {
      const path = predictorFigurePath(p);
      const beside = p.feature === "iimm" ? besideLine(p, baselines) : null;
      predictorsBox.appendChild(
        await card(doc, get, predictorTitle(p, names), predictorMeta(p), path, beside,
          staleLine(p)));
    }
    const pairs = referenceFirst(
      matrixPairs(await listAll(get, "/v1/finetuned-models")), reference, (m) => m.base);
    for (const { base, method } of pairs) {
      const title = `${method} · ${names[base] || base}`;
      const path = matrixFigurePath(base, method);
      matricesBox.appendChild(await card(doc, get, title, `base model ${base}`, path));
      comparisonsBox.appendChild(
        await comparisonCard(doc, get, title, comparisonPath(base, method)));
    }
    if (predictors.length === 0 && pairs.length === 0) {
      const start = doc.createElement("p");
      start.className = "getting-started";
      start.textContent = GETTING_STARTED;
      predictorsBox.appendChild(start);
    }
    status.textContent = `${predictors.length} predictor(s), ${pairs.length} matrix(es).`;
  } catch (e) {
    status.textContent = String(e.message || e);
    status.className = "error";
  }
}

if (typeof document !== "undefined") {
  document.addEventListener("DOMContentLoaded", () => {
    const input = document.getElementById("key");
    input.value = sessionStorage.getItem(KEY) || "";
    document.getElementById("connect").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      show(document, makeClient(input.value.trim(), fetch.bind(window)));
    });
    if (input.value) show(document, makeClient(input.value, fetch.bind(window)));
  });
}

if (typeof module !== "undefined") {
  module.exports = {
    predictorFigurePath, matrixFigurePath, matrixPairs, makeClient, predictorTitle,
    predictorMeta, staleLine, referenceFirst, GETTING_STARTED, show, zeroShotBeside, besideLine,
    zeroShotBaselines, comparisonPath, comparisonRows, comparisonText, fitStats,
  };
}
"""
