"""Small charts as inline SVG, built on the server: the machine serving the pages has no CDN and
the pages run no JavaScript.

Pure functions from numbers to markup. Every chart is an `<svg role="img">` with a `<title>`
(its accessible name) and `data-chart` / `data-points` attributes; every mark carries its value
in `data-value` and a `<title>` (a hover tooltip, read out by screen readers), so a test can
check that a chart was drawn with data without parsing geometry.
"""
from __future__ import annotations

import math
from html import escape

from django.utils.safestring import SafeString, mark_safe

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def percent(v: float) -> str:
    return f"{v * 100:.1f}%"


def _nice_max(value: float) -> float:
    """The smallest 1/2/2.5/5 × 10^k at or above value, so gridlines fall on round numbers."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp + 1e-12:
            return step * exp
    return 10 * exp


def _attr(v) -> str:
    return escape(str(v), quote=True)


def _open(chart_id: str, title: str, desc: str, width: int, height: int, points: int, extra: str = "") -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" '
        f'data-chart="{_attr(chart_id)}" data-points="{points}"{extra}>',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
    ]


def _empty(chart_id: str, title: str, width: int, height: int) -> SafeString:
    parts = _open(chart_id, title, "No data yet.", width, height, 0)
    parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {FONT} fill="#666">'
                 f'No data yet</text></svg>')
    return mark_safe("".join(parts))


def line_chart(*, chart_id: str, title: str, x: list[str], series: list[tuple[str, list[float | None]]],
               fmt=percent, width: int = 720, height: int = 260) -> SafeString:
    """One line per series over shared x labels (dates); None leaves a gap in that series."""
    points = sum(v is not None for _, values in series for v in values)
    if not x or not points:
        return _empty(chart_id, title, width, height)
    left, right, top, bottom = 48, 180, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = _nice_max(max(v for _, values in series for v in values if v is not None))
    step = plot_w / max(len(x) - 1, 1)

    def px(i: int) -> float:
        return left + (i * step if len(x) > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h - v / y_max * plot_h

    desc = f"{len(series)} series over {len(x)} points from {x[0]} to {x[-1]}; y axis up to {fmt(y_max)}."
    parts = _open(chart_id, title, desc, width, height, points, f' data-series="{len(series)}"')
    for k in range(5):  # gridlines at 0, 25, 50, 75, 100 % of the axis
        v = y_max * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" {FONT} fill="#555">'
                     f'{escape(fmt(v))}</text>')
    every = max(1, math.ceil(len(x) / 8))  # at most ~8 date labels, so they never overlap
    for i, label in enumerate(x):
        if i % every == 0 or i == len(x) - 1:
            parts.append(f'<text x="{px(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT} '
                         f'fill="#555">{escape(label[5:] if len(label) == 10 else label)}</text>')
    for s, (name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        parts.append(f'<g class="series" data-series="{_attr(name)}" fill="{colour}" stroke="{colour}">')
        run: list[str] = []
        for i, v in enumerate(values + [None]):
            if v is None:
                if len(run) > 1:
                    parts.append(f'<polyline fill="none" stroke-width="2" points="{" ".join(run)}"/>')
                run = []
            else:
                run.append(f"{px(i):.1f},{py(v):.1f}")
        for i, v in enumerate(values):
            if v is not None:
                parts.append(f'<circle class="point" cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" stroke="none" '
                             f'data-x="{_attr(x[i])}" data-value="{v}"><title>{escape(name)}, {escape(x[i])}: '
                             f'{escape(fmt(v))}</title></circle>')
        parts.append("</g>")
        ly = top + 8 + s * 16
        parts.append(f'<rect x="{left + plot_w + 14}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{left + plot_w + 28}" y="{ly + 1}" {FONT} fill="#222">{escape(name[:28])}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def bar_chart(*, chart_id: str, title: str, bars: list[tuple[str, float]], fmt=lambda v: f"{v:g}",
              pareto: bool = False, width: int = 720, bar_h: int = 20) -> SafeString:
    """Horizontal bars, in the order given; with `pareto`, each row also shows the cumulative share."""
    if not bars:
        return _empty(chart_id, title, width, 80)
    left, right, top = 220, 130, 8
    height = top * 2 + len(bars) * (bar_h + 6)
    plot_w = width - left - right
    v_max = max(v for _, v in bars) or 1
    total = sum(v for _, v in bars) or 1
    desc = f"{len(bars)} bars; largest {bars[0][0] if pareto else max(bars, key=lambda b: b[1])[0]}."
    parts = _open(chart_id, title, desc, width, height, len(bars))
    running = 0.0
    for i, (label, v) in enumerate(bars):
        y = top + i * (bar_h + 6)
        w = max(v / v_max * plot_w, 1 if v else 0)
        running += v
        note = f"{fmt(v)}" + (f" · {running / total * 100:.0f}% cum." if pareto else "")
        parts.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" {FONT} fill="#222">'
                     f'{escape(label[:34])}</text>'
                     f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{PALETTE[0]}" '
                     f'data-label="{_attr(label)}" data-value="{v}"><title>{escape(label)}: {escape(note)}</title>'
                     f'</rect><text x="{left + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}" {FONT} fill="#333">'
                     f'{escape(note)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def grouped_bar_chart(*, chart_id: str, title: str, groups: list[str], series: list[tuple[str, list[float | None]]],
                      fmt=percent, width: int = 720, bar_h: int = 12) -> SafeString:
    """Horizontal bars, one group per label and one bar per series inside it (None: no bar)."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not groups or not values:
        return _empty(chart_id, title, width, 80)
    left, right, top, gap = 170, 150, 8, 10
    group_h = len(series) * (bar_h + 2) + gap
    height = top * 2 + len(groups) * group_h
    plot_w = width - left - right - 60
    v_max = _nice_max(max(values)) if max(values) > 0 else 1
    desc = f"{len(groups)} groups × {len(series)} series: {', '.join(n for n, _ in series)}."
    parts = _open(chart_id, title, desc, width, height, len(values), f' data-series="{len(series)}"')
    for g, label in enumerate(groups):
        y0 = top + g * group_h
        parts.append(f'<text x="{left - 8}" y="{y0 + (group_h - gap) / 2 + 4:.1f}" text-anchor="end" {FONT} '
                     f'fill="#222">{escape(label[:28])}</text>')
        for s, (name, vs) in enumerate(series):
            v = vs[g]
            if v is None:
                continue
            y = y0 + s * (bar_h + 2)
            w = max(v / v_max * plot_w, 1 if v else 0)
            colour = PALETTE[s % len(PALETTE)]
            parts.append(f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}" '
                         f'data-label="{_attr(label)}" data-series="{_attr(name)}" data-value="{v}">'
                         f'<title>{escape(label)}, {escape(name)}: {escape(fmt(v))}</title></rect>'
                         f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 2}" {FONT} fill="#333">{escape(fmt(v))}</text>')
    for s, (name, _) in enumerate(series):
        ly = top + 8 + s * 16
        colour = PALETTE[s % len(PALETTE)]
        parts.append(f'<rect x="{width - right + 10}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{width - right + 24}" y="{ly + 1}" {FONT} fill="#222">{escape(name[:22])}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def scatter_whiskers(*, chart_id: str, title: str,
                     points: list[tuple[str, float, tuple, float, tuple]], x_label: str, y_label: str,
                     fmt_x=lambda v: f"{v:.2f}", fmt_y=percent, width: int = 720, height: int = 360) -> SafeString:
    """One point per (label, x, (x_lo, x_hi), y, (y_lo, y_hi)) with its intervals as whiskers: a
    horizontal bar for x's interval, a vertical one for y's (a None bound draws no whisker)."""
    if not points:
        return _empty(chart_id, title, width, height)
    left, right, top, bottom = 56, 24, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom

    def bounds(values):
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.08 or 0.05
        return max(0.0, lo - pad), (min(1.0, hi + pad) if hi <= 1 else hi + pad)

    xs = [v for _, x, (a, b), _, _ in points for v in (x, a, b) if v is not None]
    ys = [v for _, _, _, y, (a, b) in points for v in (y, a, b) if v is not None]
    x0, x1 = bounds(xs)
    y0, y1 = bounds(ys)
    x1, y1 = max(x1, x0 + 1e-9), max(y1, y0 + 1e-9)

    def px(v):
        return left + (v - x0) / (x1 - x0) * plot_w

    def py(v):
        return top + plot_h - (v - y0) / (y1 - y0) * plot_h

    desc = (f"{len(points)} releases; x: {x_label} from {fmt_x(x0)} to {fmt_x(x1)}; y: {y_label} from "
            f"{fmt_y(y0)} to {fmt_y(y1)}; whiskers are 95% intervals.")
    parts = _open(chart_id, title, desc, width, height, len(points))
    for k in range(5):
        gx, gy = x0 + (x1 - x0) * k / 4, y0 + (y1 - y0) * k / 4
        parts.append(f'<line x1="{px(gx):.1f}" x2="{px(gx):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#eee"/>'
                     f'<text x="{px(gx):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT} fill="#555">'
                     f'{escape(fmt_x(gx))}</text>'
                     f'<line x1="{left}" x2="{left + plot_w}" y1="{py(gy):.1f}" y2="{py(gy):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{py(gy) + 4:.1f}" text-anchor="end" {FONT} fill="#555">'
                     f'{escape(fmt_y(gy))}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" {FONT} fill="#222">'
                 f'{escape(x_label)}</text><text x="12" y="{top + plot_h / 2:.1f}" text-anchor="middle" {FONT} '
                 f'fill="#222" transform="rotate(-90 12 {top + plot_h / 2:.1f})">{escape(y_label)}</text>')
    for i, (label, x, (xa, xb), y, (ya, yb)) in enumerate(points):
        colour = PALETTE[i % len(PALETTE)]
        cx, cy = px(x), py(y)
        tip = (f"{label}: {x_label} {fmt_x(x)}"
               + (f" [{fmt_x(xa)}, {fmt_x(xb)}]" if None not in (xa, xb) else "")
               + f"; {y_label} {fmt_y(y)}" + (f" [{fmt_y(ya)}, {fmt_y(yb)}]" if None not in (ya, yb) else ""))
        parts.append(f'<g class="release" data-label="{_attr(label)}" stroke="{colour}" fill="{colour}">')
        if None not in (xa, xb):
            parts.append(f'<line class="whisker-x" x1="{px(xa):.1f}" x2="{px(xb):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                         f'stroke-width="1.5"/>')
        if None not in (ya, yb):
            parts.append(f'<line class="whisker-y" x1="{cx:.1f}" x2="{cx:.1f}" y1="{py(ya):.1f}" y2="{py(yb):.1f}" '
                         f'stroke-width="1.5"/>')
        parts.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="4" stroke="none" data-x="{x}" '
                     f'data-value="{y}"><title>{escape(tip)}</title></circle>'
                     f'<text x="{cx + 6:.1f}" y="{cy - 6:.1f}" {FONT} stroke="none" fill="#222">'
                     f'{escape(label[:24])}</text></g>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def band_chart(*, chart_id: str, title: str, x: list[str], values: list[float | None],
               lows: list[float | None], highs: list[float | None], counts: list[int] | None = None,
               reference: float | None = 0.5, width: int = 720, height: int = 260) -> SafeString:
    """One rate per x (a day) with its interval as a shaded band, on a 0-100 % axis; None leaves a
    gap (no data that day). `reference` draws a dashed line (0.5: no difference)."""
    points = sum(v is not None for v in values)
    if not x or not points:
        return _empty(chart_id, title, width, height)
    left, right, top, bottom = 48, 24, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(x) - 1, 1)

    def px(i: int) -> float:
        return left + (i * step if len(x) > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h - v * plot_h

    desc = (f"{points} of {len(x)} days with data, from {x[0]} to {x[-1]}; the band is the 95 % interval"
            + (f", the dashed line {percent(reference)}." if reference is not None else "."))
    parts = _open(chart_id, title, desc, width, height, points)
    for k in range(5):
        v = k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" {FONT} fill="#555">'
                     f'{escape(percent(v))}</text>')
    every = max(1, math.ceil(len(x) / 8))
    for i, label in enumerate(x):
        # The last day is always labelled; the regular label before it is dropped if they would touch.
        if (i % every == 0 and not (i != len(x) - 1 and len(x) - 1 - i < every)) or i == len(x) - 1:
            parts.append(f'<text x="{px(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT} '
                         f'fill="#555">{escape(label[5:] if len(label) == 10 else label)}</text>')
    colour = PALETTE[0]
    # The band: one polygon per run of consecutive days with an interval.
    run: list[int] = []
    for i in range(len(x) + 1):
        if i < len(x) and lows[i] is not None and highs[i] is not None:
            run.append(i)
            continue
        if run:
            upper = " ".join(f"{px(j):.1f},{py(highs[j]):.1f}" for j in run)
            lower = " ".join(f"{px(j):.1f},{py(lows[j]):.1f}" for j in reversed(run))
            if len(run) == 1:  # a lone day: a vertical bar for its interval
                j = run[0]
                parts.append(f'<rect class="band" x="{px(j) - 3:.1f}" y="{py(highs[j]):.1f}" width="6" '
                             f'height="{py(lows[j]) - py(highs[j]):.1f}" fill="{colour}" fill-opacity="0.2"/>')
            else:
                parts.append(f'<polygon class="band" points="{upper} {lower}" fill="{colour}" fill-opacity="0.2" '
                             f'stroke="none"/>')
            run = []
    if reference is not None:
        parts.append(f'<line class="reference" x1="{left}" x2="{left + plot_w}" y1="{py(reference):.1f}" '
                     f'y2="{py(reference):.1f}" stroke="#D55E00" stroke-dasharray="5,4"/>')
    line: list[str] = []
    for i, v in enumerate(values + [None]):
        if v is None:
            if len(line) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(line)}"/>')
            line = []
        else:
            line.append(f"{px(i):.1f},{py(v):.1f}")
    for i, v in enumerate(values):
        if v is None:
            continue
        n = f", n = {counts[i]}" if counts else ""
        parts.append(f'<circle class="point" cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}" '
                     f'data-x="{_attr(x[i])}" data-value="{v}" data-low="{lows[i]}" data-high="{highs[i]}">'
                     f'<title>{escape(x[i])}: {escape(percent(v))} ({escape(percent(lows[i]))}–'
                     f'{escape(percent(highs[i]))}{n})</title></circle>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
