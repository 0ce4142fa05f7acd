"""The overview's time-series charts: drawn on the server as inline SVG (readable without
JavaScript, in screenshots and by screen readers), with the same numbers embedded beside it as
JSON (``<script type="application/json" class="chart-data">``, data, never run) from which
console.js draws the chart with the vendored uPlot (static/vendor/uplot/) and hides the SVG.

Each chart has a title, labelled axes with units, and a ``<title>`` on every bar or point (the
browser shows it on hover and screen readers read it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

W, H = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 78, 12, 12, 34


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str  # a class of console.css (its colour)


def _nice(top: float) -> float:
    """The axis top: four equal steps, each a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times 10^k)."""
    if top <= 0:
        return 1.0
    raw = top / 4
    mag = float(10.0 ** math.floor(math.log10(raw)))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * mag >= raw * (1 - 1e-12):
            return 4 * m * mag
    return 40 * mag


def _axis(top: float, fmt: Callable[[float], str], unit: str) -> list[str]:
    out = []
    for i in range(5):
        v = top * i / 4
        y = TOP + (H - TOP - BOTTOM) * (1 - i / 4)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(v))}</text>'
        )
    return out


def _xlabels(labels: Sequence[str]) -> list[str]:
    n = len(labels)
    if n == 0:
        return []
    span = (W - LEFT - RIGHT) / n
    every = max(1, math.ceil(n / 5))
    out = []
    for i in range(0, n, every):
        x = LEFT + span * (i + 0.5)
        anchor = "end" if x > W - 50 else "middle"
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{H - BOTTOM + 18}" text-anchor="{anchor}">{escape(labels[i])}</text>'
        )
    return out


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><span class="swatch {escape(s.css)}" aria-hidden="true"></span>{escape(s.name)}</li>'
        for s in series
    )
    return f'<ul class="legend">{items}</ul>'


def bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    fmt: Callable[[float], str],
    test_id: str,
    at: Sequence[float] = (),
    value_format: str = "count",
) -> Markup:
    """Stacked bars, one per label (``at``: each label's bucket start, Unix seconds, for uPlot;
    ``value_format``: ``count`` or ``usd``, how uPlot writes the numbers)."""
    n = len(labels)
    totals = [sum((s.values[i] or 0.0) for s in series) for i in range(n)]
    top = _nice(max(totals, default=0.0))
    plot_h = H - TOP - BOTTOM
    span = (W - LEFT - RIGHT) / max(n, 1)
    width = max(1.0, span * 0.8)
    parts = _axis(top, fmt, unit)
    for i in range(n):
        base = 0.0
        for s in series:
            v = s.values[i] or 0.0
            if v <= 0:
                continue
            h = plot_h * v / top
            y = TOP + plot_h * (1 - (base + v) / top)
            x = LEFT + span * i + (span - width) / 2
            tip = f"{labels[i]} — {s.name}: {fmt(v)} {unit}"
            parts.append(
                f'<rect class="{escape(s.css)}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            base += v
    parts += _xlabels(labels)
    data = _data("bars", title, unit, labels, at, series, value_format)
    return _figure(title, unit, parts, series, test_id, data)


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    fmt: Callable[[float], str],
    test_id: str,
    at: Sequence[float] = (),
    value_format: str = "count",
) -> Markup:
    """One line per series (gaps where a value is missing), a dot per point (``at`` and
    ``value_format`` as for :func:`bars`)."""
    n = len(labels)
    top = _nice(max((v for s in series for v in s.values if v is not None), default=0.0))
    plot_h = H - TOP - BOTTOM
    span = (W - LEFT - RIGHT) / max(n, 1)
    parts = _axis(top, fmt, unit)
    for s in series:
        points: list[str] = []
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            x = LEFT + span * (i + 0.5)
            y = TOP + plot_h * (1 - v / top)
            runs[-1].append(f"{x:.1f},{y:.1f}")
            tip = f"{labels[i]} — {s.name}: {fmt(v)} {unit}"
            points.append(
                f'<circle class="{escape(s.css)}" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(tip)}</title></circle>'
            )
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="line {escape(s.css)}" points="{" ".join(run)}"/>')
        parts += points
    parts += _xlabels(labels)
    data = _data("lines", title, unit, labels, at, series, value_format)
    return _figure(title, unit, parts, series, test_id, data)


def _data(
    kind: str,
    title: str,
    unit: str,
    labels: Sequence[str],
    at: Sequence[float],
    series: Sequence[Series],
    value_format: str,
) -> str:
    """The chart's numbers as JSON for uPlot, safe inside ``<script>`` (no ``<``, ``>``, ``&``)."""
    doc = {
        "kind": kind,
        "title": title,
        "unit": unit,
        "format": value_format,
        "labels": list(labels),
        "x": list(at) if at else list(range(len(labels))),
        "time": bool(at),
        "series": [{"name": s.name, "css": s.css, "values": list(s.values)} for s in series],
    }
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _figure(
    title: str, unit: str, parts: list[str], series: Sequence[Series], test_id: str, data: str
) -> Markup:
    svg = (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">'
        + "".join(parts)
        + "</svg>"
    )
    return Markup(
        f'<figure class="chart" data-testid="{escape(test_id)}"><figcaption>{escape(title)}'
        f' <span class="muted">({escape(unit)})</span></figcaption>'
        f'<div class="fallback">{svg}{_legend(series)}</div>'
        f'<div class="plot" hidden></div>'
        f'<script type="application/json" class="chart-data">{data}</script></figure>'
    )


def meter(value: float, limit: float | None, label: str) -> Markup:
    """A horizontal bar: ``value`` against ``limit`` (over 100 %: drawn full, marked ``over``)."""
    if not limit:
        return Markup('<span class="muted">no limit</span>')
    ratio = value / limit
    cls = "over" if ratio >= 1 else ("warn" if ratio >= 0.8 else "ok")
    w = max(0.0, min(1.0, ratio)) * 100
    return Markup(
        f'<svg class="meter" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
        f'<rect class="track" x="0" y="0" width="100" height="8"/>'
        f'<rect class="{cls}" x="0" y="0" width="{w:.1f}" height="8"><title>{escape(label)}</title></rect></svg>'
    )
