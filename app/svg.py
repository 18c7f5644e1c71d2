"""SVG drawing: a scatter with a fitted line and its prediction band, and a heat map with a
colour scale. A leaf module (no imports from the service): the domains build their figures
with it (`app.predictors.figures`, `app.matrices.figures`).

Pure functions, data in and SVG text out, so API clients can embed the same figures the
dashboard shows (``?format=svg`` on a predictor or a matrix). Every string that comes from
users (dataset names) is XML-escaped; every plotted mark carries its exact values as
``data-*`` attributes and a ``<title>`` (a tooltip in browsers). Titles that would not fit
the figure's width are cut with an ellipsis (the whole text stays in the tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 640, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 24, 84, 56
CHAR_EM = 0.6  # a generous mean advance of a sans-serif character, in em
FONT = "font-family='system-ui, sans-serif'"
# Sequential ramp (viridis anchors): dark purple (0) to yellow (1); luminance increases.
RAMP = (
    (0x44, 0x01, 0x54),
    (0x3B, 0x52, 0x8B),
    (0x21, 0x90, 0x8C),
    (0x5D, 0xC8, 0x63),
    (0xFD, 0xE7, 0x25),
)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values within [lo, hi], spaced 1, 2 or 5 × 10^k: the spacing whose number
    of ticks is nearest `count` (at least 2 when the range allows; the wider on a tie)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    base = 10.0 ** math.floor(math.log10((hi - lo) / max(count, 1)))

    def ticks_of(step: float) -> int:
        return math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1

    steps = [m * base * f for f in (0.1, 1.0, 10.0) for m in (1, 2, 5)]
    step = min(steps, key=lambda s: (ticks_of(s) < 2, abs(ticks_of(s) - count), -s))
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, first + ticks_of(step))]


def padded_range(values: Sequence[float], pad: float = 0.06) -> tuple[float, float]:
    """[min, max] of the finite `values` widened by `pad` of the span (a unit span around a
    single value), so that marks never sit on the frame."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    span = hi - lo if hi > lo else max(abs(lo), 1.0)
    return lo - pad * span, hi + pad * span


@dataclass(frozen=True)
class Scale:
    """A linear map from data [lo, hi] to pixels [start, end]."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _num(value: float) -> str:
    return f"{value:.2f}"


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def fit_text(text: str, width: float, size: float) -> str:
    """`text` cut (with an ellipsis) to about `width` pixels at `size` px."""
    most = max(1, int(width / (CHAR_EM * size)))
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def _svg(
    body: list[str], title: str, subtitle: str = "", width: float = WIDTH, height: float = HEIGHT
) -> str:
    room = width - 2 * 12
    head = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_num(width)}' height='{_num(height)}' "
        f"viewBox='0 0 {_num(width)} {_num(height)}' role='img' {FONT} font-size='12'>"
        f"<title>{escape(' — '.join(t for t in (title, subtitle) if t))}</title>"
        f"<rect width='100%' height='100%' fill='white'/>"
        f"<text class='title' x='12' y='22' font-size='15' font-weight='600'>"
        f"{escape(fit_text(title, room, 15))}</text>"
    )
    if subtitle:
        head += (
            f"<text class='subtitle' x='12' y='40' fill='#555'>"
            f"{escape(fit_text(subtitle, room, 12))}</text>"
        )
    return head + "".join(body) + "</svg>"


def fit_svg(
    points: Sequence[tuple[str, float, float]],
    curve: Sequence[tuple[float, float]],
    *,
    x_label: str,
    y_label: str,
    title: str,
    subtitle: str = "",
    note: str = "",
    band: Sequence[tuple[float, float, float]] = (),
    fitted_range: tuple[float, float] | None = None,
    band_label: str = "95% prediction interval",
) -> str:
    """Scatter of (name, x, y) points with the fitted `curve` (a polyline in data units:
    two points for a line, three for a hinge; empty for none) drawn over them; `band`
    (x, lower, upper) is shaded behind them and `fitted_range` (the x range the fit saw)
    is marked by dashed lines. A legend names each mark."""
    xs = [x for _, x, _ in points] + [x for x, _ in curve] + [x for x, _, _ in band]
    ys = [y for _, _, y in points] + [y for _, y in curve]
    ys += [v for _, lo, hi in band for v in (lo, hi)]
    sx = Scale(*padded_range(xs), LEFT, WIDTH - RIGHT)
    sy = Scale(*padded_range(ys), HEIGHT - BOTTOM, TOP)
    body = _axes(sx, sy, x_label, y_label)
    if note:
        body.append(
            f"<text class='note' x='12' y='58' fill='#555'>"
            f"{escape(fit_text(note, WIDTH - 24, 12))}</text>"
        )
    if len(band) >= 2:
        outline = [(x, hi) for x, _, hi in band] + [(x, lo) for x, lo, _ in reversed(band)]
        path = " ".join(f"{_num(sx(x))},{_num(sy(y))}" for x, y in outline)
        data = quoteattr(" ".join(f"{x!r},{lo!r},{hi!r}" for x, lo, hi in band))
        body.append(
            f"<polygon class='band' points='{path}' data-band={data} fill='#d62728' "
            "fill-opacity='0.12' stroke='none'/>"
        )
    if fitted_range is not None:
        for edge, value in zip(("min", "max"), fitted_range, strict=True):
            x = _num(sx(value))
            body.append(
                f"<line class='fitted-range' data-edge='{edge}' data-value='{value!r}' "
                f"x1='{x}' x2='{x}' y1='{sy.end}' y2='{sy.start}' stroke='#777' "
                "stroke-dasharray='4 3'/>"
            )
    if len(curve) >= 2:
        path = " ".join(f"{_num(sx(x))},{_num(sy(y))}" for x, y in curve)
        data = quoteattr(" ".join(f"{x!r},{y!r}" for x, y in curve))
        body.append(
            f"<polyline class='fit' points='{path}' data-points={data} fill='none' "
            "stroke='#d62728' stroke-width='2'/>"
        )
    for name, x, y in points:
        tip = escape(f"{name}: x = {x:.4g}, y = {y:.4g}")
        right_half = sx(x) > (sx.start + sx.end) / 2  # labels lean inwards
        dx, anchor = (-7, "end") if right_half else (7, "start")
        body.append(
            f"<circle class='point' cx='{_num(sx(x))}' cy='{_num(sy(y))}' r='5' "
            f"data-name={quoteattr(name)} data-x='{x!r}' data-y='{y!r}' fill='#1f77b4' "
            f"fill-opacity='0.85'><title>{tip}</title></circle>"
            f"<text x='{_num(sx(x) + dx)}' y='{_num(sy(y) - 7)}' text-anchor='{anchor}' "
            f"fill='#333'>{escape(name)}</text>"
        )
    body += _fit_legend(bool(curve), bool(band), fitted_range is not None, band_label)
    return _svg(body, title, subtitle)


def _fit_legend(line: bool, band: bool, fitted: bool, band_label: str) -> list[str]:
    """One row of swatches under the title: task, fit, band, fitted range."""
    entries = [("<circle cx='5' cy='0' r='4.5' fill='#1f77b4'/>", "fine-tuned task")]
    if line:
        entries.append(
            ("<line x1='0' x2='12' y1='0' y2='0' stroke='#d62728' stroke-width='2'/>", "fit")
        )
    if band:
        entries.append(
            (
                "<rect x='0' y='-5' width='12' height='10' fill='#d62728' fill-opacity='0.12'/>",
                band_label,
            )
        )
    if fitted:
        entries.append(
            (
                "<line x1='6' x2='6' y1='-6' y2='6' stroke='#777' stroke-dasharray='4 3'/>",
                "fitted range",
            )
        )
    out, x = ["<g class='legend'>"], float(LEFT)
    for mark, label in entries:
        out.append(
            f"<g transform='translate({_num(x)} {TOP - 12})'>{mark}"
            f"<text x='17' y='0' dominant-baseline='middle' fill='#333'>"
            f"{escape(label)}</text></g>"
        )
        x += 17 + CHAR_EM * 12 * len(label) + 16
    return [*out, "</g>"]


def _axes(sx: Scale, sy: Scale, x_label: str, y_label: str) -> list[str]:
    """Frame, grid lines with tick labels, and the two axis titles."""
    out = [
        f"<rect class='frame' x='{sx.start}' y='{sy.end}' width='{sx.end - sx.start}' "
        f"height='{sy.start - sy.end}' fill='none' stroke='#999'/>"
    ]
    for t in nice_ticks(sx.lo, sx.hi):
        x = _num(sx(t))
        out.append(
            f"<line class='xtick' x1='{x}' x2='{x}' y1='{sy.end}' y2='{sy.start}' "
            f"data-value='{t!r}' stroke='#eee'/><text x='{x}' y='{sy.start + 16}' "
            f"text-anchor='middle'>{_label(t)}</text>"
        )
    for t in nice_ticks(sy.lo, sy.hi):
        y = _num(sy(t))
        out.append(
            f"<line class='ytick' x1='{sx.start}' x2='{sx.end}' y1='{y}' y2='{y}' "
            f"data-value='{t!r}' stroke='#eee'/>"
            f"<text x='{sx.start - 6}' y='{y}' text-anchor='end' "
            f"dominant-baseline='middle'>{_label(t)}</text>"
        )
    mid_x, mid_y = (sx.start + sx.end) / 2, (sy.start + sy.end) / 2
    out.append(f"<text x='{mid_x}' y='{HEIGHT - 14}' text-anchor='middle'>{escape(x_label)}</text>")
    out.append(
        f"<text x='16' y='{mid_y}' text-anchor='middle' "
        f"transform='rotate(-90 16 {mid_y})'>{escape(y_label)}</text>"
    )
    return out


def colour(value: float) -> str:
    """The ramp's colour for a value in [0, 1] (clipped), as #rrggbb."""
    v = min(max(value, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(v), len(RAMP) - 2)
    f = v - i
    rgb = (round(a + (b - a) * f) for a, b in zip(RAMP[i], RAMP[i + 1], strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def heatmap_svg(
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[float | None]],
    *,
    title: str,
    subtitle: str = "",
    row_notes: Sequence[str] = (),
    row_title: str = "",
    column_title: str = "",
    highlight: Sequence[tuple[int, int]] = (),
    highlight_label: str = "",
    missing_label: str = "no value",
    value_label: str = "value",
    row_flags: Sequence[str] = (),
    flag_label: str = "flagged",
) -> str:
    """Cells (rows × columns, values in [0, 1], None for missing) coloured on the ramp and
    printed; `row_notes` (one per row) at the right of each row; `row_title` and
    `column_title` name the axes; the cells `highlight` lists ((row, column) indices) are
    outlined. A row whose `row_flags` entry is not empty is marked with a flag (⚑) before
    its note, the entry (why) as the mark's tooltip and `data-flag`. Under the grid a colour
    scale of `value_label` and keys for the outline, for missing cells (`missing_label`)
    and, when a row is flagged, for the mark (`flag_label`)."""
    if any(len(r) != len(columns) for r in cells) or len(cells) != len(rows):
        raise ValueError("cells must have one value per row and column")
    label_w = min(220, 28 + 7 * max((len(r) for r in rows), default=0))
    note_w = 120 if row_notes else 0
    cell_w = max(36.0, min(90.0, (WIDTH - label_w - note_w - RIGHT) / max(len(columns), 1)))
    cell_h = 28.0
    head = 58.0 + (18.0 if column_title else 0.0)
    longest = max((len(c) for c in columns), default=0)
    top = head + min(110.0, 12.0 + 0.57 * 7 * longest)  # room for the slanted column names
    grid_w = cell_w * len(columns)
    flagged = any(row_flags)
    note_w += 16 if flagged else 0
    keys = max(len(missing_label), len(highlight_label) if highlight else 0,
               len(flag_label) + 2 if flagged else 0)  # fmt: skip
    width = max(WIDTH * 0.75, label_w + grid_w + note_w + RIGHT, label_w + 40 + 7 * keys)
    grid_bottom = top + cell_h * len(rows)
    height = grid_bottom + 22 + 10 + 34 + 20 * (1 + bool(highlight) + flagged) + 8
    outlined = set(highlight)
    body: list[str] = []
    if column_title:
        body.append(
            f"<text class='column-title' x='{_num(label_w + grid_w / 2)}' y='{head - 6}' "
            f"text-anchor='middle' font-weight='600'>{escape(column_title)}</text>"
        )
    if row_title:
        mid = (top + grid_bottom) / 2
        body.append(
            f"<text class='row-title' x='14' y='{_num(mid)}' text-anchor='middle' "
            f"font-weight='600' transform='rotate(-90 14 {_num(mid)})'>"
            f"{escape(row_title)}</text>"
        )
    for j, name in enumerate(columns):
        x = label_w + (j + 0.5) * cell_w
        body.append(
            f"<text class='column' x='{_num(x)}' y='{top - 6}' transform='rotate(-35 "
            f"{_num(x)} {top - 6})'>{escape(name)}</text>"
        )
    for i, (name, values) in enumerate(zip(rows, cells, strict=True)):
        y = top + i * cell_h
        body.append(
            f"<text class='row' x='{label_w - 8}' y='{_num(y + cell_h / 2)}' "
            f"text-anchor='end' dominant-baseline='middle'>{escape(name)}</text>"
        )
        for j, value in enumerate(values):
            x = label_w + j * cell_w
            attrs = f"x='{_num(x)}' y='{_num(y)}' width='{_num(cell_w - 2)}' height='{cell_h - 2}'"
            where = escape(f"{name} → {columns[j]}")
            if value is None or not math.isfinite(value):
                body.append(
                    f"<rect class='cell missing' {attrs} data-row='{i}' data-col='{j}' "
                    f"fill='#f4f4f4' stroke='#ccc' stroke-dasharray='3 2'><title>{where}: "
                    f"{escape(missing_label)}</title></rect>"
                    f"<text x='{_num(x + cell_w / 2 - 1)}' y='{_num(y + cell_h / 2)}' "
                    "fill='#999' text-anchor='middle' dominant-baseline='middle'>–</text>"
                )
            else:
                ink = "white" if value < 0.6 else "black"
                body.append(
                    f"<rect class='cell' {attrs} data-row='{i}' data-col='{j}' "
                    f"data-value='{value!r}' fill='{colour(value)}'><title>{where}: "
                    f"{value:.3f}</title></rect>"
                    f"<text x='{_num(x + cell_w / 2 - 1)}' y='{_num(y + cell_h / 2)}' "
                    f"fill='{ink}' text-anchor='middle' dominant-baseline='middle'>"
                    f"{value:.2f}</text>"
                )
            if (i, j) in outlined:
                body.append(
                    f"<rect class='highlight' data-row='{i}' data-col='{j}' "
                    f"x='{_num(x + 0.5)}' y='{_num(y + 0.5)}' width='{_num(cell_w - 3)}' "
                    f"height='{cell_h - 3}' fill='none' stroke='#e4572e' "
                    "stroke-width='2.5'/>"
                )
        note_x = label_w + grid_w + 8
        if i < len(row_flags) and row_flags[i]:
            body.append(
                f"<text class='row-flag' x='{_num(note_x)}' y='{_num(y + cell_h / 2)}' "
                f"dominant-baseline='middle' fill='#b00020' data-row='{i}' "
                f"data-flag={quoteattr(row_flags[i])}>⚑<title>{escape(row_flags[i])}</title></text>"
            )
        if i < len(row_notes):
            body.append(
                f"<text class='row-note' x='{_num(note_x + (16 if flagged else 0))}' "
                f"y='{_num(y + cell_h / 2)}' dominant-baseline='middle' fill='#333'>"
                f"{escape(row_notes[i])}</text>"
            )
    body += _heat_legend(
        label_w, grid_bottom + 22, value_label, missing_label, highlight_label if outlined else "",
        flag_label if flagged else "",
    )  # fmt: skip
    return _svg(body, title, subtitle, width, height)


def _heat_legend(
    x0: float,
    y0: float,
    value_label: str,
    missing_label: str,
    highlight_label: str,
    flag_label: str = "",
) -> list[str]:
    """The colour scale (0 to 1 on the ramp, ticked) and keys for outlined and missing cells
    and for the flag mark (each key only when its label is given)."""
    bar_w, bar_h = 200.0, 10.0
    stops = "".join(
        f"<stop offset='{k / (len(RAMP) - 1):.3f}' stop-color='{colour(k / (len(RAMP) - 1))}'/>"
        for k in range(len(RAMP))
    )
    out = [
        "<g class='legend'>",
        f"<defs><linearGradient id='ramp' x1='0' x2='1' y1='0' y2='0'>{stops}</linearGradient>"
        "</defs>",
        f"<text x='{_num(x0)}' y='{_num(y0 - 6)}' fill='#333'>{escape(value_label)}</text>",
        f"<rect class='colour-scale' x='{_num(x0)}' y='{_num(y0)}' width='{bar_w}' "
        f"height='{bar_h}' fill='url(#ramp)'/>",
    ]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _num(x0 + t * bar_w)
        out.append(
            f"<line class='scale-tick' data-value='{t!r}' x1='{x}' x2='{x}' "
            f"y1='{_num(y0 + bar_h)}' y2='{_num(y0 + bar_h + 4)}' stroke='#333'/>"
            f"<text x='{x}' y='{_num(y0 + bar_h + 16)}' text-anchor='middle'>{t:g}</text>"
        )
    keys = [(missing_label, "fill='#f4f4f4' stroke='#ccc' stroke-dasharray='3 2'", "missing")]
    if highlight_label:
        keys.append(
            (highlight_label, "fill='none' stroke='#e4572e' stroke-width='2.5'", "highlight")
        )
    for k, (label, style, kind) in enumerate(keys):
        y = y0 + bar_h + 34 + 20 * k
        out.append(
            f"<rect x='{_num(x0)}' y='{_num(y - 7)}' width='14' height='14' {style}/>"
            f"<text class='{kind}-key' x='{_num(x0 + 20)}' y='{_num(y)}' "
            f"dominant-baseline='middle'>{escape(label)}</text>"
        )
    if flag_label:
        y = y0 + bar_h + 34 + 20 * len(keys)
        out.append(
            f"<text x='{_num(x0 + 7)}' y='{_num(y)}' text-anchor='middle' "
            f"dominant-baseline='middle' fill='#b00020'>⚑</text>"
            f"<text class='flag-key' x='{_num(x0 + 20)}' y='{_num(y)}' "
            f"dominant-baseline='middle'>{escape(flag_label)}</text>"
        )
    return [*out, "</g>"]
