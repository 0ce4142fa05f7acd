"""An eval's report: JSON, a terminal table, and an HTML page with plots (inline SVG).

Every rendering carries the registration status: a run whose suite or gate no longer matches
its registration says so at the top.
"""

from __future__ import annotations

import html
import io
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from switchpoint.evals.gate import Verdict
from switchpoint.evals.metrics import CandidateMetrics, Stat
from switchpoint.evals.registry import REGISTERED

#: The metrics the table shows, in order, with how each is printed.
SHOWN = (
    ("pass_rate", "pass", "rate"),
    ("tool_arg_accuracy", "tool args", "rate"),
    ("refusal_on_missing", "refusal", "rate"),
    ("error_rate", "errors", "rate"),
    ("p50_ttft", "p50 TTFT", "s"),
    ("p95_ttft", "p95 TTFT", "s"),
    ("p50_latency", "p50 latency", "s"),
    ("p95_latency", "p95 latency", "s"),
    ("cost_per_case", "$/case", "usd"),
    ("cost_per_session", "$/session", "usd"),
)


class Report(msgspec.Struct, kw_only=True):
    suite: str
    suite_hash: str
    registration: str
    repetitions: int
    candidates: list[CandidateMetrics]
    gate: list[Verdict] | None = None
    passed: bool | None = None
    """Every challenger passed the gate (None: the suite has no gate)."""

    @property
    def exit_code(self) -> int:
        return 0 if self.passed in (True, None) else 1


def to_json(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "rate":
        return f"{value:.0%}"
    if unit == "s":
        return f"{value * 1000:.0f} ms"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def _cell(stat: Stat, unit: str) -> str:
    text = fmt(stat.value, unit)
    if stat.low is not None and stat.high is not None:
        text += f" [{fmt(stat.low, unit)} to {fmt(stat.high, unit)}]"
    return text


def table(report: Report) -> Table:
    t = Table(title=f"{report.suite} ({report.registration})", show_lines=False)
    t.add_column("metric")
    for c in report.candidates:
        t.add_column(c.candidate, overflow="fold")
    for key, title, unit in SHOWN:
        t.add_row(title, *(_cell(c.metrics[key], unit) for c in report.candidates))
    labels = sorted({label for c in report.candidates for label in c.checks})
    for label in labels:
        t.add_row(
            f"check {label}",
            *(_cell(c.checks.get(label, Stat(value=None)), "rate") for c in report.candidates),
        )
    if report.gate is not None:
        verdicts = {v.candidate: v for v in report.gate}
        t.add_row(
            "gate",
            *(
                ("[green]pass[/]" if verdicts[c.candidate].passed else "[red]fail[/]")
                if c.candidate in verdicts
                else "baseline"
                for c in report.candidates
            ),
        )
    return t


def print_report(report: Report, console: Console) -> None:
    if report.registration != REGISTERED:
        console.print(f"[bold yellow]suite {report.registration}[/]")
    console.print(table(report))
    for v in report.gate or ():
        verdict = "passes" if v.passed else "fails"
        console.print(
            f"gate: {v.candidate} {verdict} against {v.baseline} ({v.wins} wins of {v.needed} needed)"
        )
        for reason in v.reasons:
            console.print(f"  - {reason}")


def _plot(report: Report, key: str, title: str, unit: str) -> str:
    """One bar chart (with the interval as an error bar), as an SVG element; none without
    matplotlib (the ``evals`` extra)."""
    try:
        import matplotlib
    except ImportError:
        return ""

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [c.candidate for c in report.candidates]
    scale = 1000.0 if unit == "s" else (100.0 if unit == "rate" else 1.0)
    values = [(c.metrics[key].value or 0.0) * scale for c in report.candidates]
    errs: list[list[float]] = [[], []]
    for c, v in zip(report.candidates, values, strict=True):
        s = c.metrics[key]
        errs[0].append(max(v - s.low * scale, 0.0) if s.low is not None else 0.0)
        errs[1].append(max(s.high * scale - v, 0.0) if s.high is not None else 0.0)
    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    try:
        ax.bar(names, values, yerr=errs, capsize=4, color="#4c78a8")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel({"s": "ms", "rate": "%", "usd": "USD"}[unit], fontsize=8)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg")
    finally:
        plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def to_html(report: Report) -> str:
    head = "".join(f"<th>{html.escape(c.candidate)}</th>" for c in report.candidates)
    rows = []
    for key, title, unit in SHOWN:
        cells = "".join(f"<td>{html.escape(_cell(c.metrics[key], unit))}</td>" for c in report.candidates)
        rows.append(f"<tr><th>{html.escape(title)}</th>{cells}</tr>")
    gate = ""
    for v in report.gate or ():
        word = "passes" if v.passed else "fails"
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in v.reasons)
        gate += f"<p><b>{html.escape(v.candidate)}</b> {word} the gate against {html.escape(v.baseline)}.</p>"
        gate += f"<ul>{reasons}</ul>" if reasons else ""
    plots = "".join(
        f'<div class="plot">{_plot(report, key, title, unit)}</div>'
        for key, title, unit in SHOWN
        if key in ("pass_rate", "p95_ttft", "p95_latency", "cost_per_session")
    )
    warn = (
        ""
        if report.registration == REGISTERED
        else f'<p class="warn">Suite {html.escape(report.registration)}</p>'
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}.warn{color:#a60;font-weight:bold}.plot{display:inline-block}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.suite)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(report.suite)}</h1>{warn}"
        f"<p>suite {report.suite_hash[:12]}, {report.repetitions} repetition(s), {html.escape(report.registration)}</p>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>{gate}{plots}</body></html>"
    )


def summary(report: Report) -> dict[str, Any]:
    """The few figures a caller (``/admin/reload`` with a gate) answers with."""
    return {
        "suite": report.suite,
        "registration": report.registration,
        "passed": report.passed,
        "gate": [msgspec.to_builtins(v) for v in report.gate or ()],
    }
