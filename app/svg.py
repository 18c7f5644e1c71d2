"""SVG figures of the service: a predictor's fit (its feature against gain or forgetting, the
fitted line or hinge over the fitted range) and an accuracy matrix as a heat map.

Pure functions, data in and SVG text out, so API clients can embed the same figures the
dashboard shows (``?format=svg`` on a predictor or a matrix). Every string that comes from
users (dataset names) is XML-escaped; every plotted mark carries its exact values as
``data-*`` attributes and a ``<title>`` (a tooltip in browsers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 640, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 24, 56, 56
FONT = "font-family='system-ui, sans-serif'"
# Sequential ramp (viridis anchors): dark purple (0) to yellow (1); luminance increases.
RAMP = ((0x44, 0x01, 0x54), (0x3B, 0x52, 0x8B), (0x21, 0x90, 0x8C), (0x5D, 0xC8, 0x63),
        (0xFD, 0xE7, 0x25))  # fmt: skip


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


def _svg(body: list[str], title: str) -> str:
    head = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' {FONT} font-size='12'>"
        f"<title>{escape(title)}</title><rect width='100%' height='100%' fill='white'/>"
        f"<text x='{LEFT}' y='24' font-size='15' font-weight='600'>{escape(title)}</text>"
    )
    return head + "".join(body) + "</svg>"


def fit_svg(
    points: Sequence[tuple[str, float, float]],
    curve: Sequence[tuple[float, float]],
    *,
    x_label: str,
    y_label: str,
    title: str,
    note: str = "",
) -> str:
    """Scatter of (name, x, y) points with the fitted `curve` (a polyline in data units:
    two points for a line, three for a hinge; empty for none) drawn over them."""
    xs = [x for _, x, _ in points] + [x for x, _ in curve]
    ys = [y for _, _, y in points] + [y for _, y in curve]
    sx = Scale(*padded_range(xs), LEFT, WIDTH - RIGHT)
    sy = Scale(*padded_range(ys), HEIGHT - BOTTOM, TOP)
    body = _axes(sx, sy, x_label, y_label)
    if note:
        body.append(f"<text x='{LEFT}' y='42' fill='#555'>{escape(note)}</text>")
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
    return _svg(body, title)


def _axes(sx: Scale, sy: Scale, x_label: str, y_label: str) -> list[str]:
    """Frame, grid lines with tick labels, and the two axis titles."""
    out = [
        f"<rect class='frame' x='{sx.start}' y='{sy.end}' width='{sx.end - sx.start}' "
        f"height='{sy.start - sy.end}' fill='none' stroke='#999'/>"
    ]
    for t in nice_ticks(sx.lo, sx.hi):
        x = _num(sx(t))
        out.append(f"<line class='xtick' x1='{x}' x2='{x}' y1='{sy.end}' y2='{sy.start}' "
                   f"data-value='{t!r}' stroke='#eee'/><text x='{x}' y='{sy.start + 16}' "
                   f"text-anchor='middle'>{_label(t)}</text>")  # fmt: skip
    for t in nice_ticks(sy.lo, sy.hi):
        y = _num(sy(t))
        out.append(f"<line class='ytick' x1='{sx.start}' x2='{sx.end}' y1='{y}' y2='{y}' "
                   f"data-value='{t!r}' stroke='#eee'/>"
                   f"<text x='{sx.start - 6}' y='{y}' text-anchor='end' "
                   f"dominant-baseline='middle'>{_label(t)}</text>")  # fmt: skip
    mid_x, mid_y = (sx.start + sx.end) / 2, (sy.start + sy.end) / 2
    out.append(f"<text x='{mid_x}' y='{HEIGHT - 14}' text-anchor='middle'>{escape(x_label)}</text>")
    out.append(f"<text x='16' y='{mid_y}' text-anchor='middle' "
               f"transform='rotate(-90 16 {mid_y})'>{escape(y_label)}</text>")  # fmt: skip
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
    row_notes: Sequence[str] = (),
) -> str:
    """Cells (rows × columns, values in [0, 1], None for missing) coloured on the ramp and
    printed; `row_notes` (one per row) are written at the right of each row."""
    if any(len(r) != len(columns) for r in cells) or len(cells) != len(rows):
        raise ValueError("cells must have one value per row and column")
    label_w = min(220, 12 + 7 * max((len(r) for r in rows), default=0))
    note_w = 120 if row_notes else 0
    cell_w = max(36.0, min(90.0, (WIDTH - label_w - note_w - RIGHT) / max(len(columns), 1)))
    cell_h = 28.0
    top = TOP + 70.0  # room for rotated column names
    width = label_w + cell_w * len(columns) + note_w + RIGHT
    height = top + cell_h * len(rows) + 24
    body: list[str] = []
    for j, name in enumerate(columns):
        x = label_w + (j + 0.5) * cell_w
        body.append(f"<text x='{_num(x)}' y='{top - 6}' transform='rotate(-35 {_num(x)} "
                    f"{top - 6})'>{escape(name)}</text>")  # fmt: skip
    for i, (name, values) in enumerate(zip(rows, cells, strict=True)):
        y = top + i * cell_h
        body.append(f"<text x='{label_w - 8}' y='{_num(y + cell_h / 2)}' text-anchor='end' "
                    f"dominant-baseline='middle'>{escape(name)}</text>")  # fmt: skip
        for j, value in enumerate(values):
            x = label_w + j * cell_w
            attrs = f"x='{_num(x)}' y='{_num(y)}' width='{_num(cell_w - 2)}' height='{cell_h - 2}'"
            where = escape(f"{name} → {columns[j]}")
            if value is None or not math.isfinite(value):
                body.append(f"<rect class='cell missing' {attrs} data-row='{i}' data-col='{j}' "
                            f"fill='#f4f4f4'><title>{where}: none</title></rect>")  # fmt: skip
                continue
            ink = "white" if value < 0.6 else "black"
            body.append(
                f"<rect class='cell' {attrs} data-row='{i}' data-col='{j}' data-value='{value!r}' "
                f"fill='{colour(value)}'><title>{where}: {value:.3f}</title></rect>"
                f"<text x='{_num(x + cell_w / 2 - 1)}' y='{_num(y + cell_h / 2)}' fill='{ink}' "
                f"text-anchor='middle' dominant-baseline='middle'>{value:.2f}</text>"
            )
        if i < len(row_notes):
            body.append(f"<text x='{_num(label_w + cell_w * len(columns) + 8)}' "
                        f"y='{_num(y + cell_h / 2)}' dominant-baseline='middle' fill='#333'>"
                        f"{escape(row_notes[i])}</text>")  # fmt: skip
    svg = _svg(body, title)
    return svg.replace(
        f"width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}'",
        f"width='{_num(width)}' height='{_num(height)}' viewBox='0 0 {_num(width)} {_num(height)}'",
        1,
    )
