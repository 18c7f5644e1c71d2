"""The figures' text in a real browser: headless Chromium renders the figures of
test_svg_layout on one page, and each text element's getBBox() (the glyphs as drawn, in the
browser's own sans-serif), mapped through its transforms, must meet no other text's box,
stay in the viewBox, and be no wider than the layout's estimate. Skipped where no Chromium
is installed (Debian: chromium-headless-shell or chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.svg import text_width
from tests.app.test_svg_layout import (
    HEAT_MAPS,
    SCATTERS,
    _overlap,
    heat_figure,
    scatter_figure,
    text_boxes,
)

BROWSER = next(
    (b for b in ("chromium-headless-shell", "chromium", "chromium-browser") if shutil.which(b)),
    None,
)

# For each figure, each non-empty text: its visible string (not its tooltip), font size and
# weight, and its getBBox() corners mapped by getCTM() into the figure's viewBox units.
SCRIPT = """
const out = [];
for (const svg of document.querySelectorAll("svg")) {
  const view = svg.viewBox.baseVal, texts = [];
  for (const el of svg.querySelectorAll("text")) {
    const shown = Array.from(el.childNodes).filter(n => n.nodeType === 3)
      .map(n => n.nodeValue).join("");
    if (!shown) continue;
    const b = el.getBBox(), m = el.getCTM(), style = getComputedStyle(el);
    const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height],
                     [b.x, b.y + b.height]].map(([x, y]) => {
      const p = new DOMPoint(x, y).matrixTransform(m);
      return [p.x, p.y];
    });
    texts.push({shown, corners, width: b.width, size: parseFloat(style.fontSize),
                bold: parseInt(style.fontWeight, 10) >= 600});
  }
  out.push({view: [view.x, view.y, view.width, view.height], texts});
}
document.getElementById("result").textContent = JSON.stringify(out);
"""


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_figures_text_does_not_overlap_in_a_browser(tmp_path: Path) -> None:
    figures = [scatter_figure(*case) for case in SCATTERS]
    figures += [heat_figure(*case)[0] for case in HEAT_MAPS]
    page = tmp_path / "figures.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'></head><body>"
        + "".join(f"<div>{svg}</div>" for svg in figures)
        + f"<pre id='result'></pre><script>{SCRIPT}</script></body></html>",
        encoding="utf-8",
    )
    run = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(r"<pre id=\"result\">(.*?)</pre>", run.stdout, re.S)
    assert found and found.group(1), f"no result from {BROWSER}: {run.stderr[-2000:]}"
    drawn = json.loads(html.unescape(found.group(1)))
    assert len(drawn) == len(figures)
    for svg, figure in zip(figures, drawn, strict=True):
        texts = figure["texts"]
        assert len(texts) == len(text_boxes(svg)[0])  # the browser drew every text
        vx, vy, vw, vh = figure["view"]
        for t in texts:
            assert t["width"] > 0, t["shown"]
            assert t["width"] <= text_width(t["shown"], t["size"], t["bold"]) + 0.01, t["shown"]
            for x, y in t["corners"]:
                assert vx - 0.01 <= x <= vx + vw + 0.01 and vy - 0.01 <= y <= vy + vh + 0.01, (
                    f"{t['shown']!r} leaves the viewBox at ({x:.1f}, {y:.1f})"
                )
        for k, a in enumerate(texts):
            for b in texts[k + 1 :]:
                assert not _overlap(a["corners"], b["corners"]), (
                    f"{a['shown']!r} overlaps {b['shown']!r}"
                )
