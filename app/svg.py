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

WIDTH = 640
PLOT_HEIGHT = 300  # the scatter's frame
PAD = 12  # margin between the figure's edge and any text
SIZE = 12  # px, the font size of every text but the title
TITLE_SIZE = 15
LINE = 15  # px between the baselines of two lines of 12 px text
FONT = "font-family='system-ui, sans-serif'"
# Text extents. No font is embedded, so the viewer's own sans-serif draws the text: the
# layout reserves room for the widest common one. An advance (in em) for each character
# class, at least DejaVu Sans's and Verdana's (the widest common sans-serifs; Arial,
# Helvetica, Segoe UI, SF and Roboto are narrower), bold 12% wider; a line box from
# ASCENT above the baseline to DESCENT below (DejaVu: 0.93 and 0.24).
_NARROW, _SEMI, _WIDE = set("ijl.,:;'|!"), set('frt()[]/\\"`-IJ'), set("mwMW")
_EM_NARROW, _EM_SEMI, _EM_SPACE, _EM_LOWER, _EM_UPPER, _EM_OTHER = 0.42, 0.5, 0.36, 0.64, 0.8, 1.0
BOLD = 1.12
ASCENT, DESCENT = 0.95, 0.25
# dominant-baseline='middle' text spans MID_UP em above its y to MID_DOWN below (whether a
# browser takes the middle at half the x-height or half the em box)
MID_UP, MID_DOWN = 0.7, 0.6
ELLIPSIS = "…"
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
    """[min, max] of the finite `values` widened by `pad` of the span (of max(|value|, 1)
    around a single value, or values that differ by rounding only, whose ticks would
    otherwise collapse), so that marks never sit on the frame."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    scale = max(abs(lo), abs(hi), 1.0)
    span = hi - lo if hi - lo > 1e-6 * scale else scale  # values equal to rounding: as one
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


def char_em(ch: str) -> float:
    """A conservative advance of `ch`, in em (see the constants above)."""
    if ch == " ":
        return _EM_SPACE
    if ch in _NARROW:
        return _EM_NARROW
    if ch in _SEMI:
        return _EM_SEMI
    if ch in _WIDE or not ch.isascii():
        return _EM_OTHER
    if ch.islower() or ch.isdigit():
        return _EM_LOWER
    if ch.isupper():
        return _EM_UPPER
    return _EM_OTHER


def text_width(text: str, size: float = SIZE, bold: bool = False) -> float:
    """The width `text` takes at `size` px: at least what the widest common sans-serif takes."""
    return sum(char_em(ch) for ch in text) * size * (BOLD if bold else 1.0)


def fit_text(text: str, width: float, size: float = SIZE, bold: bool = False) -> str:
    """`text`, or its longest start with an ellipsis that fits `width` pixels at `size` px."""
    if text_width(text, size, bold) <= width + 1e-6:
        return text
    room = width - text_width(ELLIPSIS, size, bold)
    used, cut = 0.0, 0
    for ch in text:
        used += char_em(ch) * size * (BOLD if bold else 1.0)
        if used > room:
            break
        cut += 1
    return text[:cut].rstrip() + ELLIPSIS


def wrap_text(text: str, width: float, size: float = SIZE, lines: int = 2) -> list[str]:
    """`text` broken at spaces into at most `lines` lines of at most `width` pixels, the last
    cut with an ellipsis if the text does not fit; a word wider than a line is cut."""
    out: list[str] = []
    words = text.split()
    while words and len(out) < lines - 1:
        line = words.pop(0)
        while words and text_width(f"{line} {words[0]}", size) <= width:
            line += " " + words.pop(0)
        if text_width(line, size) > width:  # one long word: the rest goes on the next line
            return [*out, fit_text(" ".join([line, *words]), width, size)]
        out.append(line)
    if words:
        out.append(fit_text(" ".join(words), width, size))
    return out or [""]


def _text(shown: str, full: str, x: float, y: float, extra: str = "", cls: str = "") -> str:
    """A <text> at (x, y) showing `shown`; when that is a cut of `full`, the whole of `full`
    is its <title> (a tooltip in browsers)."""
    tip = f"<title>{escape(full)}</title>" if shown != full else ""
    cls_attr = f" class='{cls}'" if cls else ""
    return (
        f"<text{cls_attr} x='{_num(x)}' y='{_num(y)}'{' ' + extra if extra else ''}>"
        f"{escape(shown)}{tip}</text>"
    )


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in pixels."""

    x0: float
    y0: float
    x1: float
    y1: float

    def meets(self, other: Box) -> bool:
        return (self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1
                and other.y0 < self.y1)  # fmt: skip

    def inside(self, other: Box) -> bool:
        return (other.x0 <= self.x0 and self.x1 <= other.x1 and other.y0 <= self.y0
                and self.y1 <= other.y1)  # fmt: skip


def _header(title: str, subtitle: str, width: float) -> tuple[list[str], float]:
    """The title and subtitle lines (cut to `width`), and the y under them."""
    room = width - 2 * PAD
    y = 8 + ASCENT * TITLE_SIZE
    out = [_text(fit_text(title, room, TITLE_SIZE, bold=True), title, PAD, y,
                 f"font-size='{TITLE_SIZE}' font-weight='600'", "title")]  # fmt: skip
    bottom = y + DESCENT * TITLE_SIZE
    if subtitle:
        y = bottom + 4 + ASCENT * SIZE
        out.append(_text(fit_text(subtitle, room), subtitle, PAD, y, "fill='#555'", "subtitle"))
        bottom = y + DESCENT * SIZE
    return out, bottom


def _svg(body: list[str], title: str, subtitle: str, width: float, height: float) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_num(width)}' height='{_num(height)}' "
        f"viewBox='0 0 {_num(width)} {_num(height)}' role='img' {FONT} font-size='{SIZE}'>"
        f"<title>{escape(' — '.join(t for t in (title, subtitle) if t))}</title>"
        f"<rect width='100%' height='100%' fill='white'/>" + "".join(body) + "</svg>"
    )


def _x_ticks(lo: float, hi: float, length: float) -> list[float]:
    """Ticks for an axis `length` pixels long whose centred labels keep 8 px apart."""
    for count in (5, 4, 3, 2):
        ticks = nice_ticks(lo, hi, count)
        if len(ticks) < 2:
            return ticks
        gap = length * (ticks[1] - ticks[0]) / (hi - lo)
        if gap >= max(text_width(_label(t)) for t in ticks) + 8:
            return ticks
    return ticks[:: max(1, len(ticks) - 1)]  # the two ends


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
    is marked by dashed lines. A legend names each mark.

    Laid out from text extents, top to bottom: title, subtitle, note, legend rows, the
    frame (its height fixed) with tick labels, the x-axis title; the y-axis title (up to two
    lines) and the widest y tick label set the left margin. Each point's name goes beside
    it where it meets no other name and stays in the frame, and is left out where it
    cannot (the point's tooltip names it)."""
    xs = [x for _, x, _ in points] + [x for x, _ in curve] + [x for x, _, _ in band]
    ys = [y for _, _, y in points] + [y for _, y in curve]
    ys += [v for _, lo, hi in band for v in (lo, hi)]
    x_lo, x_hi = padded_range(xs)
    y_lo, y_hi = padded_range(ys)
    body, y = _header(title, subtitle, WIDTH)
    if note:
        y += 4 + ASCENT * SIZE
        body.append(_text(fit_text(note, WIDTH - 2 * PAD), note, PAD, y, "fill='#555'", "note"))
        y += DESCENT * SIZE
    y_ticks = nice_ticks(y_lo, y_hi)
    y_lines = wrap_text(y_label, PLOT_HEIGHT)
    tick_w = max(text_width(_label(t)) for t in y_ticks)
    left = PAD + len(y_lines) * LINE + 6 + tick_w + 6
    x_ticks = _x_ticks(x_lo, x_hi, WIDTH - left - 60)
    right = WIDTH - max(24.0, PAD + max(text_width(_label(t)) for t in x_ticks) / 2)
    legend, y = _fit_legend(bool(curve), bool(band), fitted_range is not None, band_label,
                            left, y)  # fmt: skip
    top = y + 6 + MID_UP * SIZE
    sx = Scale(x_lo, x_hi, left, right)
    sy = Scale(y_lo, y_hi, top + PLOT_HEIGHT, top)
    axes, bottom = _axes(sx, sy, x_ticks, y_ticks, x_label, y_label)
    body += axes
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
    body += _points(points, sx, sy) + legend
    return _svg(body, title, subtitle, WIDTH, bottom + PAD)


POINT_NAME_WIDTH = 150.0  # px; longer names are cut (the whole name in the tooltip)


def _points(points: Sequence[tuple[str, float, float]], sx: Scale, sy: Scale) -> list[str]:
    """The points' circles, and beside each its name where there is room (see fit_svg)."""
    out = []
    frame = Box(sx.start + 2, sy.end + 2, sx.end - 2, sy.start - 2)
    marks = [Box(sx(x) - 5, sy(y) - 5, sx(x) + 5, sy(y) + 5) for _, x, y in points]
    placed: list[Box] = []
    for (name, x, y), mark in zip(points, marks, strict=True):
        cx, cy = sx(x), sy(y)
        tip = escape(f"{name}: x = {x:.4g}, y = {y:.4g}")
        shown = fit_text(name, POINT_NAME_WIDTH)
        w = text_width(shown)
        spot = _spot(cx, cy, w, frame, placed, [m for m in marks if m is not mark])
        out.append(
            f"<circle class='point' cx='{_num(cx)}' cy='{_num(cy)}' r='5' "
            f"data-name={quoteattr(name)} data-x='{x!r}' data-y='{y!r}' fill='#1f77b4' "
            f"fill-opacity='0.85' data-labelled='{'yes' if spot else 'no'}'>"
            f"<title>{tip}</title></circle>"
        )
        if spot is not None:
            box, tx, ty = spot
            placed.append(box)
            out.append(_text(shown, name, tx, ty, "fill='#333'", "point-name"))
    return out


def _spot(
    cx: float, cy: float, w: float, frame: Box, placed: list[Box], marks: list[Box]
) -> tuple[Box, float, float] | None:
    """Where a name `w` wide goes beside the point at (cx, cy): the first of eight spots
    (inwards first) inside `frame` that meets no `placed` name, preferring one that covers
    no other point; (box, x, y of its start and baseline), or None."""
    up, down = ASCENT * SIZE, DESCENT * SIZE
    inward = 1 if cx < (frame.x0 + frame.x1) / 2 else -1
    spots = []
    for side in (inward, -inward):
        x0 = cx + 7 if side > 0 else cx - 7 - w
        for base in (cy - 7, cy + 7 + up, cy + (up - down) / 2):  # above, below, level
            spots.append((Box(x0, base - up, x0 + w, base + down), x0, base))
    fits = [s for s in spots if s[0].inside(frame) and not any(s[0].meets(b) for b in placed)]
    clear = [s for s in fits if not any(s[0].meets(m) for m in marks)]
    return (clear or fits or [None])[0]


def _fit_legend(
    line: bool, band: bool, fitted: bool, band_label: str, left: float, y: float
) -> tuple[list[str], float]:
    """Rows of swatches from `left` under the y given: task, fit, band, fitted range; and
    the y under them."""
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
    row_y = y + 6 + MID_UP * SIZE
    out, x = ["<g class='legend'>"], left
    for mark, label in entries:
        shown = fit_text(label, WIDTH - PAD - left - 17)
        w = 17 + text_width(shown)
        if x > left and x + w > WIDTH - PAD:
            x, row_y = left, row_y + 20
        out.append(
            f"<g transform='translate({_num(x)} {_num(row_y)})'>{mark}"
            + _text(shown, label, 17, 0, "dominant-baseline='middle' fill='#333'")
            + "</g>"
        )
        x += w + 16
    return [*out, "</g>"], row_y + MID_DOWN * SIZE


def _axes(
    sx: Scale,
    sy: Scale,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    x_label: str,
    y_label: str,
) -> tuple[list[str], float]:
    """Frame, grid lines with tick labels, and the two axis titles (lines of text: the
    y-axis title's at the left edge, turned); and the y under the x-axis title."""
    out = [
        f"<rect class='frame' x='{_num(sx.start)}' y='{_num(sy.end)}' "
        f"width='{_num(sx.end - sx.start)}' height='{_num(sy.start - sy.end)}' fill='none' "
        "stroke='#999'/>"
    ]
    mid_x, mid_y = (sx.start + sx.end) / 2, (sy.start + sy.end) / 2
    x_lines = wrap_text(x_label, 2 * min(mid_x - PAD, WIDTH - PAD - mid_x))
    y_lines = wrap_text(y_label, sy.start - sy.end)
    tick_y = sy.start + MID_DOWN * SIZE + 2 + ASCENT * SIZE  # under the lowest y tick label
    for t in x_ticks:
        x = _num(sx(t))
        out.append(
            f"<line class='xtick' x1='{x}' x2='{x}' y1='{_num(sy.end)}' y2='{_num(sy.start)}' "
            f"data-value='{t!r}' stroke='#eee'/><text x='{x}' y='{_num(tick_y)}' "
            f"text-anchor='middle'>{_label(t)}</text>"
        )
    for t in y_ticks:
        y = _num(sy(t))
        out.append(
            f"<line class='ytick' x1='{_num(sx.start)}' x2='{_num(sx.end)}' y1='{y}' "
            f"y2='{y}' data-value='{t!r}' stroke='#eee'/>"
            f"<text x='{_num(sx.start - 6)}' y='{y}' text-anchor='end' "
            f"dominant-baseline='middle'>{_label(t)}</text>"
        )
    y = tick_y + DESCENT * SIZE + 4 + ASCENT * SIZE - LINE
    for k, line in enumerate(x_lines):
        y += LINE
        full = x_label if k == len(x_lines) - 1 and line.endswith(ELLIPSIS) else line
        out.append(_text(line, full, mid_x, y, "text-anchor='middle'", "x-label"))
    for k, line in enumerate(y_lines):
        x = PAD + ASCENT * SIZE + k * LINE
        full = y_label if k == len(y_lines) - 1 and line.endswith(ELLIPSIS) else line
        out.append(_text(line, full, x, mid_y,
                         f"text-anchor='middle' transform='rotate(-90 {_num(x)} {_num(mid_y)})'",
                         "y-label"))  # fmt: skip
    return out, y + DESCENT * SIZE


def colour(value: float) -> str:
    """The ramp's colour for a value in [0, 1] (clipped), as #rrggbb."""
    v = min(max(value, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(v), len(RAMP) - 2)
    f = v - i
    rgb = (round(a + (b - a) * f) for a, b in zip(RAMP[i], RAMP[i + 1], strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


ROW_NAME_WIDTH = 180.0  # px; longer row and column names are cut (whole in the tooltip)
COLUMN_NAME_WIDTH = 150.0
SLANT = 35.0  # degrees the column names rise by


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
    and, when a row is flagged, for the mark (`flag_label`).

    Laid out from text extents: the row names (and `row_title`, over them) set the left
    column's width, the widest printed value the cells' width, the longest slanted column
    name the room above the grid (under `column_title`), the notes and keys the width.
    Names longer than ROW_NAME_WIDTH or COLUMN_NAME_WIDTH are cut with an ellipsis, the
    whole name in their tooltip."""
    if any(len(r) != len(columns) for r in cells) or len(cells) != len(rows):
        raise ValueError("cells must have one value per row and column")
    row_names = [fit_text(r, ROW_NAME_WIDTH) for r in rows]
    col_names = [fit_text(c, COLUMN_NAME_WIDTH) for c in columns]
    label_w = PAD + 8 + max([text_width(r) for r in row_names]
                            + [text_width(row_title, bold=True)], default=0.0)  # fmt: skip
    printed = [_cell_text(v) for r in cells for v in r]
    cell_w = max(36.0, 8 + max((text_width(t) for t in printed), default=0.0))
    cell_w = max(cell_w, min(90.0, (WIDTH - label_w - 160) / max(len(columns), 1)))
    cell_h = 28.0
    grid_w = cell_w * len(columns)
    flagged = any(row_flags)
    notes_x = label_w + grid_w + 8 + (16 if flagged else 0)
    notes_w = max((text_width(n) for n in row_notes), default=0.0)
    body, y = _header(title, subtitle, WIDTH)  # the title is cut again once the width is known
    sin, cos = math.sin(math.radians(SLANT)), math.cos(math.radians(SLANT))
    if column_title:
        y += 8 + ASCENT * SIZE
        column_title_y = y
        y += DESCENT * SIZE
    rise = max((text_width(c) * sin for c in col_names), default=0.0) + ASCENT * SIZE * cos
    top = y + 8 + rise + 6
    grid_bottom = top + cell_h * len(rows)
    reach = [label_w + (j + 0.5) * cell_w + text_width(c) * cos + DESCENT * SIZE * sin
             for j, c in enumerate(col_names)]  # fmt: skip
    legend, legend_w, bottom = _heat_legend(
        label_w, grid_bottom + 22, value_label, missing_label,
        highlight_label if highlight else "", flag_label if flagged else "",
    )  # fmt: skip
    width = max(WIDTH * 0.75, notes_x + notes_w + PAD, max(reach, default=0.0) + PAD,
                label_w + legend_w + PAD)  # fmt: skip
    body, _ = _header(title, subtitle, width)
    if column_title:
        shown = fit_text(column_title, width - 2 * PAD, bold=True)
        half = text_width(shown, bold=True) / 2
        x = min(max(label_w + grid_w / 2, PAD + half), width - PAD - half)
        body.append(_text(shown, column_title, x, column_title_y,
                          "text-anchor='middle' font-weight='600'", "column-title"))  # fmt: skip
    if row_title:
        body.append(_text(fit_text(row_title, label_w - PAD - 8, bold=True), row_title,
                          label_w - 8, top - 6, "text-anchor='end' font-weight='600'",
                          "row-title"))  # fmt: skip
    for j, (shown, name) in enumerate(zip(col_names, columns, strict=True)):
        x = label_w + (j + 0.5) * cell_w
        body.append(_text(shown, name, x, top - 6,
                          f"transform='rotate(-{SLANT:g} {_num(x)} {_num(top - 6)})'",
                          "column"))  # fmt: skip
    outlined = set(highlight)
    for i, (name, values) in enumerate(zip(rows, cells, strict=True)):
        y = top + i * cell_h
        mid = y + cell_h / 2
        body.append(_text(row_names[i], name, label_w - 8, mid,
                          "text-anchor='end' dominant-baseline='middle'", "row"))  # fmt: skip
        for j, value in enumerate(values):
            x = label_w + j * cell_w
            attrs = f"x='{_num(x)}' y='{_num(y)}' width='{_num(cell_w - 2)}' height='{cell_h - 2}'"
            where = escape(f"{name} → {columns[j]}")
            if value is None or not math.isfinite(value):
                body.append(
                    f"<rect class='cell missing' {attrs} data-row='{i}' data-col='{j}' "
                    f"fill='#f4f4f4' stroke='#ccc' stroke-dasharray='3 2'><title>{where}: "
                    f"{escape(missing_label)}</title></rect>"
                    f"<text x='{_num(x + cell_w / 2 - 1)}' y='{_num(mid)}' "
                    "fill='#999' text-anchor='middle' dominant-baseline='middle'>–</text>"
                )
            else:
                ink = "white" if value < 0.6 else "black"
                body.append(
                    f"<rect class='cell' {attrs} data-row='{i}' data-col='{j}' "
                    f"data-value='{value!r}' fill='{colour(value)}'><title>{where}: "
                    f"{value:.3f}</title></rect>"
                    f"<text x='{_num(x + cell_w / 2 - 1)}' y='{_num(mid)}' "
                    f"fill='{ink}' text-anchor='middle' dominant-baseline='middle'>"
                    f"{_cell_text(value)}</text>"
                )
            if (i, j) in outlined:
                body.append(
                    f"<rect class='highlight' data-row='{i}' data-col='{j}' "
                    f"x='{_num(x + 0.5)}' y='{_num(y + 0.5)}' width='{_num(cell_w - 3)}' "
                    f"height='{cell_h - 3}' fill='none' stroke='#e4572e' "
                    "stroke-width='2.5'/>"
                )
        if i < len(row_flags) and row_flags[i]:
            body.append(
                f"<text class='row-flag' x='{_num(label_w + grid_w + 8)}' y='{_num(mid)}' "
                f"dominant-baseline='middle' fill='#b00020' data-row='{i}' "
                f"data-flag={quoteattr(row_flags[i])}>⚑<title>{escape(row_flags[i])}</title></text>"
            )
        if i < len(row_notes) and row_notes[i]:
            body.append(_text(row_notes[i], row_notes[i], notes_x, mid,
                              "dominant-baseline='middle' fill='#333'", "row-note"))  # fmt: skip
    body += legend
    return _svg(body, title, subtitle, width, bottom + PAD)


def _cell_text(value: float | None) -> str:
    return f"{value:.2f}" if value is not None and math.isfinite(value) else "–"


def _heat_legend(
    x0: float,
    y0: float,
    value_label: str,
    missing_label: str,
    highlight_label: str,
    flag_label: str = "",
) -> tuple[list[str], float, float]:
    """The colour scale (0 to 1 on the ramp, ticked) and keys for outlined and missing cells
    and for the flag mark (each key only when its label is given); with its width and the
    y under it."""
    bar_w, bar_h = 200.0, 10.0
    stops = "".join(
        f"<stop offset='{k / (len(RAMP) - 1):.3f}' stop-color='{colour(k / (len(RAMP) - 1))}'/>"
        for k in range(len(RAMP))
    )
    out = [
        "<g class='legend'>",
        f"<defs><linearGradient id='ramp' x1='0' x2='1' y1='0' y2='0'>{stops}</linearGradient>"
        "</defs>",
        _text(value_label, value_label, x0, y0 - 6, "fill='#333'"),
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
            + _text(label, label, x0 + 20, y, "dominant-baseline='middle'", f"{kind}-key")
        )
    if flag_label:
        y = y0 + bar_h + 34 + 20 * len(keys)
        out.append(
            f"<text x='{_num(x0 + 7)}' y='{_num(y)}' text-anchor='middle' "
            f"dominant-baseline='middle' fill='#b00020'>⚑</text>"
            + _text(flag_label, flag_label, x0 + 20, y, "dominant-baseline='middle'", "flag-key")
        )
    y_last = y0 + bar_h + 34 + 20 * (len(keys) - 1 + bool(flag_label))
    labels = [value_label, *(k[0] for k in keys), *([flag_label] if flag_label else [])]
    width = max([bar_w + text_width("1") / 2] + [20 + text_width(t) for t in labels])
    return [*out, "</g>"], width, y_last + MID_DOWN * SIZE
