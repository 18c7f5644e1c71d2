"""The SVG figures: marks sit where their data says (recovered through the drawn axes),
user strings are escaped, the heat map's colours are ordered, ticks are round."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.svg import RAMP, colour, fit_svg, heatmap_svg, nice_ticks, text_width

NS = {"s": "http://www.w3.org/2000/svg"}
HOSTILE = "<script>alert('x')</script> & \"quotes\""


def _axis_map(root: ET.Element, kind: str) -> tuple[float, float]:
    """(pixels per unit, offset) of an axis from two of its drawn ticks."""
    ticks = root.findall(f".//s:line[@class='{kind}']", NS)
    assert len(ticks) >= 2
    coord = "x1" if kind == "xtick" else "y1"
    (v0, p0), (v1, p1) = [(float(t.get("data-value")), float(t.get(coord))) for t in ticks[:2]]
    slope = (p1 - p0) / (v1 - v0)
    return slope, p0 - slope * v0


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-1e3, 1e3, allow_nan=False),
    span=st.floats(1e-4, 1e4, allow_nan=False),
    count=st.integers(2, 10),
)
def test_ticks_are_round_evenly_spaced_and_inside(lo: float, span: float, count: int) -> None:
    hi = lo + span
    ticks = nice_ticks(lo, hi, count)
    assert ticks and all(lo - 1e-9 * span <= t <= hi + 1e-9 * span for t in ticks)
    if len(ticks) > 1:
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0], rtol=1e-6)
        mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    assert 2 <= len(ticks) <= 2 * count + 1
    assert nice_ticks(0.083, 0.587, 5) == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_fit_points_and_line_sit_where_their_data_says() -> None:
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(0.1, 0.6, 7), rng.uniform(-0.2, 0.9, 7)
    points = [(f"t{i}", float(x), float(y)) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    curve = [(0.1, 0.05), (0.35, 0.6), (0.6, 0.6)]  # a hinge
    root = ET.fromstring(fit_svg(points, curve, x_label="iimm", y_label="G", title="t"))
    ax, bx = _axis_map(root, "xtick")
    ay, by = _axis_map(root, "ytick")
    assert ax > 0 > ay  # x grows to the right, y upwards
    circles = root.findall(".//s:circle[@class='point']", NS)
    assert [(c.get("data-name"), float(c.get("data-x")), float(c.get("data-y")))
            for c in circles] == points  # fmt: skip
    for c in circles:
        assert float(c.get("cx")) == pytest.approx(ax * float(c.get("data-x")) + bx, abs=0.02)
        assert float(c.get("cy")) == pytest.approx(ay * float(c.get("data-y")) + by, abs=0.02)
    (line,) = root.findall(".//s:polyline[@class='fit']", NS)
    drawn = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    for (px, py), (x, y) in zip(drawn, curve, strict=True):
        assert px == pytest.approx(ax * x + bx, abs=0.02)
        assert py == pytest.approx(ay * y + by, abs=0.02)
    frame = root.find(".//s:rect[@class='frame']", NS)
    x0, w = float(frame.get("x")), float(frame.get("width"))
    assert all(x0 < float(c.get("cx")) < x0 + w for c in circles)  # inside the frame


def test_user_strings_are_escaped() -> None:
    svg = fit_svg([(HOSTILE, 0.1, 0.2), ("b", 0.3, 0.4)], [], x_label=HOSTILE,
                  y_label="G", title=HOSTILE, note=HOSTILE)  # fmt: skip
    root = ET.fromstring(svg)  # well-formed
    assert not root.findall(".//s:script", NS) and "<script>" not in svg
    assert root.find(".//s:circle", NS).get("data-name") == HOSTILE
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert HOSTILE in texts
    heat = heatmap_svg([HOSTILE], [HOSTILE], [[0.5]], title=HOSTILE, row_notes=[HOSTILE])
    assert not ET.fromstring(heat).findall(".//s:script", NS) and "<script>" not in heat


def _luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_colour_ramp_is_ordered_and_clipped() -> None:
    values = np.linspace(0, 1, 101)
    lum = [_luminance(colour(float(v))) for v in values]
    assert all(b > a for a, b in itertools.pairwise(lum))
    assert colour(0.0) == "#{:02x}{:02x}{:02x}".format(*RAMP[0])
    assert colour(1.0) == "#{:02x}{:02x}{:02x}".format(*RAMP[-1])
    assert colour(-3.0) == colour(0.0) and colour(7.0) == colour(1.0)


def test_heatmap_cells_hold_their_values() -> None:
    rows, cols = ["zero-shot", "a", "b"], ["a", "b", "c", "d"]
    rng = np.random.default_rng(1)
    cells: list[list[float | None]] = [[float(v) for v in rng.uniform(0, 1, 4)] for _ in rows]
    cells[1][2] = None
    root = ET.fromstring(heatmap_svg(rows, cols, cells, title="m", row_notes=["", "G +0.5", ""]))
    rects = root.findall(".//s:rect", NS)
    drawn = {(int(r.get("data-row")), int(r.get("data-col"))): r for r in rects
             if "cell" in (r.get("class") or "")}  # fmt: skip
    assert set(drawn) == {(i, j) for i in range(3) for j in range(4)}
    for (i, j), rect in drawn.items():
        if cells[i][j] is None:
            assert rect.get("class") == "cell missing" and rect.get("data-value") is None
        else:
            assert float(rect.get("data-value")) == cells[i][j]
            assert rect.get("fill") == colour(cells[i][j])
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "G +0.5" in texts and f"{cells[0][0]:.2f}" in texts
    with pytest.raises(ValueError, match="one value per row and column"):
        heatmap_svg(["a"], ["x", "y"], [[0.1]], title="bad")


def test_long_titles_are_cut_to_the_width_and_kept_whole_in_the_tooltip() -> None:
    long = "G vs iimm · full · " + "a very long base model name " * 6
    root = ET.fromstring(fit_svg([("a", 0.1, 0.2), ("b", 0.3, 0.4)], [], x_label="x",
                                 y_label="y", title=long, subtitle="fitted today"))  # fmt: skip
    drawn = root.find(".//s:text[@class='title']", NS)
    shown = drawn.text
    assert shown.endswith("…") and long.startswith(shown[:-1])
    assert text_width(shown, 15, bold=True) <= float(root.get("width")) - 24
    assert drawn.find("s:title", NS).text == long  # the text's own tooltip
    assert root.find("s:title", NS).text == f"{long} — fitted today"


def test_band_and_fitted_range_are_drawn_with_a_legend() -> None:
    band = [(0.0, -0.1, 0.3), (0.5, 0.2, 0.5), (1.0, 0.6, 1.1)]
    root = ET.fromstring(fit_svg([("a", 0.2, 0.2), ("b", 0.8, 0.8)], [(0.2, 0.2), (0.8, 0.8)],
                                 x_label="x", y_label="y", title="t", band=band,
                                 fitted_range=(0.2, 0.8)))  # fmt: skip
    (poly,) = root.findall(".//s:polygon[@class='band']", NS)
    assert [tuple(map(float, t.split(","))) for t in poly.get("data-band").split()] == band
    assert len(poly.get("points").split()) == 2 * len(band)  # upper edge, then lower
    edges = [float(e.get("data-value")) for e in root.findall(".//s:line[@class='fitted-range']",
                                                               NS)]  # fmt: skip
    assert edges == [0.2, 0.8]
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"fit", "95% prediction interval", "fitted range"} <= set(texts)


def test_heatmap_outlines_axes_scale_and_missing_key() -> None:
    cells: list[list[float | None]] = [[0.1, 0.2], [0.9, None]]
    root = ET.fromstring(heatmap_svg(
        ["zero-shot", "a"], ["a", "b"], cells, title="m", row_title="training dataset",
        column_title="evaluation dataset", highlight=[(1, 0)], highlight_label="in-domain",
        missing_label="not evaluated", value_label="accuracy",
    ))  # fmt: skip
    outlined = [(r.get("data-row"), r.get("data-col"))
                for r in root.findall(".//s:rect[@class='highlight']", NS)]  # fmt: skip
    assert outlined == [("1", "0")]
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for label in ("training dataset", "evaluation dataset", "in-domain", "not evaluated",
                  "accuracy", "0", "0.5", "1"):  # fmt: skip
        assert label in texts, label
    stops = root.findall(".//s:linearGradient/s:stop", NS)
    assert [s.get("stop-color") for s in stops] == ["#{:02x}{:02x}{:02x}".format(*c) for c in RAMP]
    missing = root.find(".//s:rect[@class='cell missing']", NS)
    assert missing.find("s:title", NS).text.endswith("not evaluated")
