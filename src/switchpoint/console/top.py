"""``switchpoint top``: the overview in a terminal, refreshed live (rich).

Reads a running gateway over HTTP (``GET /admin/usage`` and ``GET /admin/breakers``, with the
master key or an admin key), or a ledger database directly (no breakers then: they live in the
gateway's memory).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from switchpoint.console import format
from switchpoint.console.views import parse_when

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_of(value: str, now: float | None = None) -> float:
    """``30m``, ``24h``, ``7d`` ago, or a time (epoch seconds, ISO 8601 in UTC)."""
    m = _AGO.match(value.strip())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    return parse_when(value, "--since")


@dataclass
class Frame:
    """What one refresh read: the totals, per deployment, and the breakers (None: unknown)."""

    source: str
    since: float
    totals: dict[str, Any]
    overall: dict[str, Any] | None
    deployments: list[dict[str, Any]]
    breakers: dict[str, dict[str, Any]] | None
    currency: dict[str, Any]


class HttpSource:
    def __init__(self, url: str, key: str | None, timeout_s: float = 10.0) -> None:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def _get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params)
        if r.status_code != 200:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200]
            raise RuntimeError(f"{path}: HTTP {r.status_code}: {message}")
        return r.json()

    def read(self, since: float) -> Frame:
        overall = self._get("/admin/usage", since=since)
        per = self._get("/admin/usage", since=since, group_by="deployment")
        breakers = self._get("/admin/breakers")["deployments"]
        return Frame(
            source=self.url,
            since=since,
            totals=overall["totals"],
            overall=overall["data"][0] if overall["data"] else None,
            deployments=per["data"],
            breakers=breakers,
            currency=overall["currency"],
        )

    def close(self) -> None:
        self.client.close()


class DatabaseSource:
    def __init__(self, url: str, currency: Any) -> None:
        from switchpoint.store.engine import make_engine, redacted

        self.engine = make_engine(url)
        self.label = redacted(url)
        self.currency = currency

    def read(self, since: float) -> Frame:
        import msgspec

        from switchpoint.store import queries

        overall = queries.usage(self.engine, [], since)
        per = queries.usage(self.engine, ["deployment"], since)
        totals: dict[str, Any] = {"requests": 0, "errors": 0, "cost_usd": 0.0, "cache_read_ratio": None}
        if overall:
            o = overall[0]
            totals = {
                "requests": o.requests,
                "errors": o.errors,
                "cost_usd": o.cost_usd,
                "cache_read_ratio": o.cache_read_ratio,
            }
        rows = []
        for r in per:
            d = msgspec.to_builtins(r)
            d["deployment"] = r.group["deployment"]
            rows.append(d)
        return Frame(
            source=self.label,
            since=since,
            totals=totals,
            overall=msgspec.to_builtins(overall[0]) if overall else None,
            deployments=rows,
            breakers=None,
            currency={"code": self.currency.code, "per_usd": self.currency.rate},
        )

    def close(self) -> None:
        self.engine.dispose()


def _money(usd: float, currency: dict[str, Any]) -> str:
    text = format.usd(usd)
    if currency.get("code", "USD") != "USD":
        text += f" ({usd * float(currency['per_usd']):,.4f} {currency['code']})"
    return text


def render(frame: Frame, now: float | None = None) -> RenderableType:
    t = frame.totals
    o = frame.overall or {}
    n = int(t.get("requests") or 0)
    errors = int(t.get("errors") or 0)
    head = Table.grid(padding=(0, 3))
    for _ in range(4):
        head.add_column()
    head.add_row(
        Text.assemble(("requests ", "dim"), (format.count(n), "bold")),
        Text.assemble(("error rate ", "dim"), (format.pct(errors / n if n else None), "bold")),
        Text.assemble(("spend ", "dim"), (_money(float(t.get("cost_usd") or 0.0), frame.currency), "bold")),
        Text.assemble(("cache reads ", "dim"), (format.pct(t.get("cache_read_ratio")), "bold")),
    )
    head.add_row(
        Text.assemble(("latency p50 ", "dim"), format.ms(o.get("latency_p50_ms"))),
        Text.assemble(("latency p95 ", "dim"), format.ms(o.get("latency_p95_ms"))),
        Text.assemble(("TTFT p50 ", "dim"), format.ms(o.get("ttft_p50_ms"))),
        Text.assemble(("TTFT p95 ", "dim"), format.ms(o.get("ttft_p95_ms"))),
    )
    table = Table(expand=True)
    table.add_column("deployment")
    table.add_column("breaker")
    table.add_column("requests", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("TTFT p95", justify="right")
    table.add_column("spend (USD)", justify="right")
    table.add_column("in flight", justify="right")
    breakers = frame.breakers
    names = [str(d.get("deployment")) for d in frame.deployments]
    if breakers is not None:
        names += [b for b in breakers if b not in names]
    by_name = {str(d.get("deployment")): d for d in frame.deployments}
    for name in names:
        d = by_name.get(name, {})
        b = (breakers or {}).get(name)
        state = str(b["state"]) if b else ("-" if breakers is None else "closed")
        style = {"open": "bold red", "half_open": "yellow", "closed": "green"}.get(state, "dim")
        req = int(d.get("requests") or 0)
        err = int(d.get("errors") or 0)
        table.add_row(
            name if name != "None" else "(none answered)",
            Text(state, style=style),
            format.count(req),
            f"{format.count(err)} ({format.pct(err / req if req else None)})",
            format.ms(d.get("latency_p50_ms")),
            format.ms(d.get("latency_p95_ms")),
            format.ms(d.get("ttft_p95_ms")),
            format.usd(float(d.get("cost_usd") or 0.0)) if d else "-",
            str(b.get("inflight", 0)) if b else "-",
        )
    if not names:
        table.add_row("no requests in the window yet", "", "", "", "", "", "", "", "")
    title = f"switchpoint top · {frame.source} · since {format.when(frame.since)}"
    stamp = format.when(time.time() if now is None else now)
    note = "" if breakers is not None else " · breakers: only over HTTP (--url)"
    return Panel(Group(head, Text(""), table), title=title, subtitle=f"updated {stamp}{note}")


def run(
    source: HttpSource | DatabaseSource,
    since: str,
    *,
    interval_s: float = 2.0,
    once: bool = False,
    console: Console | None = None,
    frames: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Draw the view; redraw every ``interval_s`` until Ctrl-C (``once``: one frame, printed)."""
    out = console or Console()
    try:
        if once:
            out.print(render(source.read(since_of(since))))
            return
        with Live(render(source.read(since_of(since))), console=out, refresh_per_second=4) as live:
            drawn = 1
            while frames is None or drawn < frames:
                sleep(interval_s)
                try:
                    live.update(render(source.read(since_of(since))))
                except Exception as exc:  # keep the last frame; say why it is stale
                    live.update(Panel(Text(f"cannot refresh: {exc}", style="red"), title="switchpoint top"))
                drawn += 1
    finally:
        source.close()
