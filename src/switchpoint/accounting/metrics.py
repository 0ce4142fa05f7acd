"""Prometheus ``/metrics``: requests, tokens by class, cost, latency and TTFT, errors by kind.

Two sources, one shape (:class:`Totals`, the rows of the ledger's ``usage_totals`` and
``latency_buckets`` tables, keyed the same way):

- ledger on: :class:`LedgerTotals` reads this instance's rows from the database (every worker
  of one ``switchpoint serve`` writes there), at scrape time, off the event loop, cached for
  about a second: the database is the truth, so any worker answers for all of them;
- ledger off: :class:`MetricsSink` keeps the same rows in process memory (a few dict
  increments per booked record), so each worker reports its own requests.

:class:`UsageCollector` turns a :class:`Totals` into metric families on a registry the gateway
owns (never prometheus-client's global one). Label sets are bounded: deployment, alias, status
class, error kind, token class, task. An alias the config does not name (a client may send any
model name) is ``other``; a request no deployment answered has ``deployment="none"``; a task the
config does not name (routing rules, the classifier) is ``other``, no task ``none``. Never a
key, a session or a request id.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from switchpoint.accounting import Booked, Sink
from switchpoint.config import Config
from switchpoint.store.tables import BUCKETS

_BOUNDS_MS = tuple(b * 1000.0 for b in BUCKETS)
_LE = (*(repr(b) if b != int(b) else f"{b:.1f}" for b in BUCKETS), "+Inf")

#: Token classes, as ``switchpoint_tokens_total{class=...}``: they partition the tokens
#: billed (``input`` is the uncached input, ``output`` excludes reasoning), so they add up.
TOKEN_CLASSES = ("input", "cached_input", "cache_write_5m", "cache_write_1h", "output", "reasoning")

log = logging.getLogger("switchpoint.metrics")

#: The text exposition format ``generate_latest`` writes.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

#: deployment ('' = none), alias, status, error kind ('' = none), task ('' = none)
Key = tuple[str, str, int, str, str]
HistKey = tuple[str, str]  # deployment, alias


class Row:
    """The counters of one ``usage_totals`` key."""

    __slots__ = (
        "cache_write_1h_tokens",
        "cache_write_5m_tokens",
        "cached_input_tokens",
        "cost_usd",
        "input_tokens",
        "latency_ms_sum",
        "output_tokens",
        "reasoning_tokens",
        "requests",
        "saved_usd",
        "ttft_count",
        "ttft_ms_sum",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.input_tokens = 0
        self.cached_input_tokens = 0
        self.cache_write_5m_tokens = 0
        self.cache_write_1h_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self.cost_usd = 0.0
        self.saved_usd = 0.0
        self.latency_ms_sum = 0.0
        self.ttft_ms_sum = 0.0
        self.ttft_count = 0

    def add(self, other: Row) -> None:
        for name in Row.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Totals:
    """Counters by (deployment, alias, status, error kind); bucket counts (not cumulative,
    one per :data:`BUCKETS` bound and +Inf) by (deployment, alias) for latency and TTFT."""

    __slots__ = ("latency", "rows", "ttft")

    def __init__(self) -> None:
        self.rows: dict[Key, Row] = {}
        self.latency: dict[HistKey, list[int]] = {}
        self.ttft: dict[HistKey, list[int]] = {}


def bucket_index(le: float) -> int:
    """The position of a stored bucket bound (``INF`` or above the last: +Inf)."""
    i = bisect.bisect_left(BUCKETS, le * (1 - 1e-9))
    return i if i < len(BUCKETS) and abs(BUCKETS[i] - le) <= 1e-9 * max(1.0, le) else len(BUCKETS)


class Labels:
    """Bounded label values: the aliases and deployments the config names, and ``auto``; the
    tasks it names."""

    __slots__ = ("aliases", "deployments", "tasks")

    def __init__(
        self,
        aliases: Collection[str] = (),
        deployments: Collection[str] = (),
        tasks: Collection[str] = (),
    ) -> None:
        self.deployments = frozenset(deployments)
        self.aliases = frozenset(aliases) | self.deployments | {"auto"}
        self.tasks = frozenset(tasks)

    def task(self, name: str | None) -> str:
        if not name:
            return "none"
        return name if name in self.tasks else "other"

    def alias(self, name: str) -> str:
        return name if name in self.aliases else "other"

    def deployment(self, name: str | None) -> str:
        if not name:
            return "none"
        return name if name in self.deployments else "other"


def _kind(kind: str) -> str:
    return kind if _KIND.match(kind) else "other"


class _SinkRow(Row):
    """A row the in-process sink keeps, with its own histogram counts (merged per deployment
    and alias when read: one lookup per record instead of three)."""

    __slots__ = ("latency", "ttft")

    def __init__(self) -> None:
        super().__init__()
        self.latency = [0] * (len(BUCKETS) + 1)
        self.ttft = [0] * (len(BUCKETS) + 1)


_bisect = bisect.bisect_left


class MetricsSink:
    """In-process totals (the ledger is off): the same rows the ledger's writer keeps."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self._rows: dict[tuple[str | None, str, int, str | None, str], _SinkRow] = {}

    def use_labels(self, labels: Labels) -> None:
        self.labels = labels

    def write(self, batch: Sequence[Booked]) -> None:
        rows = self._rows
        aliases, tasks = self.labels.aliases, self.labels.tasks
        for booked in batch:
            rec = booked.record
            model, task = rec.model, rec.task
            # bounded here already: a client may name any task, the sink's memory stays bounded
            key = (
                rec.deployment,
                model if model in aliases else "other",
                rec.status,
                rec.error,
                "" if not task else task if task in tasks else "other",
            )
            row = rows.get(key)
            if row is None:
                row = rows[key] = _SinkRow()
            row.requests += 1
            usage = rec.usage
            if usage is not None:
                row.input_tokens += usage.input_tokens
                row.cached_input_tokens += usage.cached_input_tokens
                row.cache_write_5m_tokens += usage.cache_write_tokens - usage.cache_write_1h_tokens
                row.cache_write_1h_tokens += usage.cache_write_1h_tokens
                row.output_tokens += usage.output_tokens
                row.reasoning_tokens += usage.reasoning_tokens
            row.cost_usd += booked.cost.total
            row.saved_usd += booked.saved_usd
            latency = rec.latency_ms
            row.latency_ms_sum += latency
            row.latency[_bisect(_BOUNDS_MS, latency)] += 1
            ttft = rec.ttft_ms
            if ttft is not None:
                row.ttft_ms_sum += ttft
                row.ttft_count += 1
                row.ttft[_bisect(_BOUNDS_MS, ttft)] += 1

    @property
    def totals(self) -> Totals:
        """The rows as :class:`Totals` (keys as the ledger's: '' for no deployment or error)."""
        out = Totals()
        for (dep, alias, status, kind, task), row in self._rows.items():
            out.rows[(dep or "", alias, status, kind or "", task)] = row
            hist = (dep or "", alias)
            for target, counts in ((out.latency, row.latency), (out.ttft, row.ttft)):
                if counts is row.ttft and not row.ttft_count:
                    continue  # as in the ledger: no bucket rows without an observation
                _add_counts(target, hist, counts)
        return out

    async def snapshot(self) -> Totals:
        return self.totals

    async def close(self) -> None:
        return None


class LedgerTotals:
    """This instance's totals from the ledger, read off the event loop and cached for
    ``max_age_s``: scrapes never block requests, and many scrapes cost one query. A failed
    read is logged and counted (``errors``); the scrape gets the last totals read."""

    def __init__(self, read: Callable[[], Totals], *, max_age_s: float = 1.0) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._cached: Totals | None = None
        self._at = 0.0
        self._pending: asyncio.Task[Totals] | None = None
        self.reads = 0
        self.errors = 0

    async def snapshot(self) -> Totals:
        if self._cached is not None and time.monotonic() - self._at < self.max_age_s:
            return self._cached
        if self._pending is None:  # else a read is on its way: share it
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> Totals:
        try:
            totals = await asyncio.to_thread(self._read)
        except Exception:
            self.errors += 1
            log.warning("could not read the usage totals from the ledger", exc_info=True)
            return self._cached if self._cached is not None else Totals()
        finally:
            self._pending = None
        self.reads += 1
        self._cached, self._at = totals, time.monotonic()
        return totals

    async def close(self) -> None:
        if self._pending is not None:
            await asyncio.shield(self._pending)


def read_ledger(engine: Any, instance: str) -> Totals:
    """``usage_totals`` and ``latency_buckets`` rows of ``instance`` (a blocking read)."""
    import sqlalchemy as sa

    from switchpoint.store import tables

    ut, lb = tables.usage_totals, tables.latency_buckets
    totals = Totals()
    with engine.connect() as conn:
        for r in conn.execute(sa.select(ut).where(ut.c.instance == instance)).mappings():
            row = Row()
            for name in Row.__slots__:
                value = r[name]
                if value is not None:
                    setattr(row, name, value)
            key = (
                r["deployment"] or "",
                r["alias"] or "",
                int(r["status"]),
                r["error_kind"] or "",
                r["task"] or "",
            )
            have = totals.rows.get(key)
            if have is None:
                totals.rows[key] = row
            else:
                have.add(row)
        query = sa.select(lb.c.metric, lb.c.deployment, lb.c.alias, lb.c.le, lb.c.count).where(
            lb.c.instance == instance
        )
        for metric, dep, alias, le, count in conn.execute(query):
            target = totals.latency if metric == "latency" else totals.ttft if metric == "ttft" else None
            if target is None:
                continue
            hist = (dep or "", alias or "")
            counts = target.get(hist)
            if counts is None:
                counts = target[hist] = [0] * (len(BUCKETS) + 1)
            counts[bucket_index(float(le))] += int(count or 0)
    return totals


class UsageCollector(Collector):
    """The usage families of the latest :class:`Totals` (set by :meth:`use` before a render)."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.totals = Totals()

    def use(self, totals: Totals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        return iter(families(self.totals, self.labels))


def families(totals: Totals, labels: Labels) -> list[Metric]:
    """Metric families for ``totals``, rows merged under their bounded label values."""
    requests: dict[tuple[str, str, str], int] = {}
    errors: dict[tuple[str, str, str], int] = {}
    tokens: dict[tuple[str, str], list[int]] = {}
    cost: dict[tuple[str, str], float] = {}
    saved: dict[tuple[str, str, str], float] = {}
    task_inputs: dict[tuple[str], list[int]] = {}
    lat_sum: dict[tuple[str, str], float] = {}
    ttft_sum: dict[tuple[str, str], float] = {}
    for (dep, alias, status, kind, task), row in totals.rows.items():
        d, a, t = labels.deployment(dep), labels.alias(alias), labels.task(task)
        cls = f"{status // 100}xx" if 100 <= status < 600 else "other"
        requests[(d, a, cls)] = requests.get((d, a, cls), 0) + row.requests
        if kind:
            k = (d, a, _kind(kind))
            errors[k] = errors.get(k, 0) + row.requests
        writes = row.cache_write_5m_tokens + row.cache_write_1h_tokens
        parts = (
            row.input_tokens - row.cached_input_tokens - writes,
            row.cached_input_tokens,
            row.cache_write_5m_tokens,
            row.cache_write_1h_tokens,
            row.output_tokens - row.reasoning_tokens,
            row.reasoning_tokens,
        )
        _add_counts(tokens, (d, a), parts)
        _add_counts(task_inputs, (t,), parts[:4])
        cost[(d, a)] = cost.get((d, a), 0.0) + row.cost_usd
        saved[(d, a, t)] = saved.get((d, a, t), 0.0) + row.saved_usd
        lat_sum[(d, a)] = lat_sum.get((d, a), 0.0) + row.latency_ms_sum
        ttft_sum[(d, a)] = ttft_sum.get((d, a), 0.0) + row.ttft_ms_sum

    by_class = CounterMetricFamily(
        "switchpoint_tokens",
        "Tokens by class (input is the uncached input; output excludes reasoning; the classes add up).",
        labels=("deployment", "alias", "class"),
    )
    for (d, a), counts in sorted(tokens.items()):
        for cls_name, n in zip(TOKEN_CLASSES, counts, strict=True):
            by_class.add_metric((d, a, cls_name), max(0, n))
    inputs_by_task = CounterMetricFamily(
        "switchpoint_task_input_tokens",
        "Input tokens by task and class (the cache-read ratio of a task is class=cached_input "
        "over the sum of its classes).",
        labels=("task", "class"),
    )
    for (t,), counts in sorted(task_inputs.items()):
        for cls_name, n in zip(TOKEN_CLASSES[:4], counts, strict=True):
            inputs_by_task.add_metric((t, cls_name), max(0, n))
    return [
        _counter(
            "switchpoint_requests",
            "Requests answered, by deployment, alias and status class.",
            ("deployment", "alias", "status_class"),
            requests,
        ),
        _counter(
            "switchpoint_request_errors",
            "Requests answered with an error, by error kind.",
            ("deployment", "alias", "kind"),
            errors,
        ),
        by_class,
        _counter(
            "switchpoint_cost_usd", "Cost in USD (priced per token class).", ("deployment", "alias"), cost
        ),
        _counter(
            "switchpoint_cache_saved_usd",
            "USD caching saved: prompt-cache reads less write surcharges, and response-cache hits "
            "(the cache-read ratio is switchpoint_tokens{class=cached_input} over all input classes).",
            ("deployment", "alias", "task"),
            saved,
        ),
        inputs_by_task,
        _histogram(
            "switchpoint_request_duration_seconds",
            "Request latency, from the request's arrival to its last byte.",
            totals.latency,
            lat_sum,
            labels,
        ),
        _histogram(
            "switchpoint_time_to_first_token_seconds",
            "Time to the first content from upstream (streams and answers that report it).",
            totals.ttft,
            ttft_sum,
            labels,
        ),
    ]


_K = TypeVar("_K", bound=tuple[str, ...])


def _add_counts(into: dict[_K, list[int]], key: _K, counts: Sequence[int]) -> None:
    """Add ``counts`` element by element into ``into[key]`` (a copy of them when it is new)."""
    have = into.get(key)
    if have is None:
        into[key] = list(counts)
    else:
        for i, n in enumerate(counts):
            have[i] += n


_LabelValues = TypeVar("_LabelValues", bound=tuple[str, ...])


def _counter(
    name: str, doc: str, label_names: tuple[str, ...], values: Mapping[_LabelValues, float]
) -> CounterMetricFamily:
    """A counter family with one sample per label tuple, in label order."""
    fam = CounterMetricFamily(name, doc, labels=label_names)
    for label_values, n in sorted(values.items()):
        fam.add_metric(label_values, n)
    return fam


def _histogram(
    name: str,
    doc: str,
    counts_by: dict[HistKey, list[int]],
    sums_ms: dict[tuple[str, str], float],
    labels: Labels,
) -> HistogramMetricFamily:
    merged: dict[tuple[str, str], list[int]] = {}
    for (dep, alias), counts in counts_by.items():
        _add_counts(merged, (labels.deployment(dep), labels.alias(alias)), counts)
    fam = HistogramMetricFamily(name, doc, labels=("deployment", "alias"))
    for key, counts in sorted(merged.items()):
        cumulative, buckets = 0, []
        for le, n in zip(_LE, counts, strict=True):
            cumulative += n
            buckets.append((le, float(cumulative)))
        fam.add_metric(key, buckets, sum_value=sums_ms.get(key, 0.0) / 1000.0)
    return fam


class GatewayMetrics:
    """The gateway's registry (its own, never prometheus-client's global one), its usage
    collector, and where the totals come from (the ledger, or the in-process sink)."""

    def __init__(self, labels: Labels, source: MetricsSink | LedgerTotals) -> None:
        self.source = source
        self.collector = UsageCollector(labels)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def use_labels(self, labels: Labels) -> None:
        """A reloaded config's aliases and deployments."""
        self.collector.labels = labels
        if isinstance(self.source, MetricsSink):
            self.source.use_labels(labels)

    def process_lines(self, dropped: int) -> list[str]:
        """This process's own accounting series: records dropped by a full buffer, failed
        reads of the ledger's totals."""
        lines = [
            "# HELP switchpoint_accounting_dropped_total Records dropped because the accounting buffer was full (this process).",
            "# TYPE switchpoint_accounting_dropped_total counter",
            f"switchpoint_accounting_dropped_total {dropped}",
        ]
        if isinstance(self.source, LedgerTotals):
            lines += [
                "# HELP switchpoint_metrics_ledger_read_errors_total Scrapes that could not read the ledger's totals (served the last read).",
                "# TYPE switchpoint_metrics_ledger_read_errors_total counter",
                f"switchpoint_metrics_ledger_read_errors_total {self.source.errors}",
            ]
        return lines

    async def render(self, extra: Iterable[str] = (), *, dropped: int = 0) -> bytes:
        """The text exposition: the usage families, then ``extra`` lines (whole families of
        process-local series: breakers, resilience counters, in-flight, connections), then
        :meth:`process_lines`."""
        totals = await self.source.snapshot()
        self.collector.use(totals)  # no await between this and the render below
        text = generate_latest(self.registry)
        lines = "\n".join([*extra, *self.process_lines(dropped)])
        return text + lines.encode() + b"\n"


def labels_of(config: Config) -> Labels:
    """The bounded label values a config allows."""
    return Labels(config.aliases, config.deployments, tasks_of(config))


def tasks_of(config: Config) -> set[str]:
    """The tasks a config names: its routing rules' ``match.task``, the classifier's default
    task, rules and example sets."""
    routing = config.routing
    if routing is None:
        return set()
    names: set[str] = set()
    for rule in [*routing.rules, *([routing.default] if routing.default is not None else [])]:
        task = rule.match.task
        if task is not None:
            names.update([task] if isinstance(task, str) else task)
    classifier = routing.classifier
    if classifier.default_task is not None:
        names.add(classifier.default_task)
    names.update(r.task for r in classifier.rules)
    if classifier.semantic is not None:
        names.update(classifier.semantic.examples)
    return names


def gateway_metrics(
    config: Config, sinks: list[Sink], *, ledger: Callable[[], Totals] | None = None
) -> GatewayMetrics:
    """The gateway's metrics: from ``ledger`` (a blocking read of this instance's totals, e.g.
    ``functools.partial(read_ledger, engine, instance)``) when the ledger is on, else from an
    in-process :class:`MetricsSink`, appended to ``sinks``."""
    labels = labels_of(config)
    if ledger is not None:
        return GatewayMetrics(labels, LedgerTotals(ledger))
    sink = MetricsSink(labels)
    sinks.append(sink)
    return GatewayMetrics(labels, sink)


def ledger_reader(engine: Any, instance: str) -> Callable[[], Totals]:
    """A blocking read of ``instance``'s totals from the ledger at ``engine``."""
    return functools.partial(read_ledger, engine, instance)


_LEDGER_SERIES = (
    (
        "buffered",
        "switchpoint_ledger_buffered",
        "gauge",
        "Records waiting for the ledger's writer (this process).",
    ),
    (
        "written",
        "switchpoint_ledger_written_total",
        "counter",
        "Requests written to the database by this process.",
    ),
    (
        "spilled",
        "switchpoint_ledger_spilled_total",
        "counter",
        "Requests written to the spill file (database down or slow).",
    ),
    (
        "replayed",
        "switchpoint_ledger_replayed_total",
        "counter",
        "Requests replayed from the spill file into the database.",
    ),
    (
        "dropped",
        "switchpoint_ledger_dropped_total",
        "counter",
        "Requests lost: neither the database nor the spill file took them.",
    ),
    ("failures", "switchpoint_ledger_write_failures_total", "counter", "Batches the database refused."),
)


def ledger_lines(stats: Mapping[str, Any]) -> list[str]:
    """The ledger writer's own series (``Ledger.stats()``), per process."""
    lines: list[str] = []
    for key, name, kind, doc in _LEDGER_SERIES:
        if key in stats:
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", f"{name} {int(stats[key])}"]
    if "database_ok" in stats:
        name = "switchpoint_ledger_database_up"
        lines += [
            f"# HELP {name} 1 while the ledger's last write reached the database, 0 while it spills.",
            f"# TYPE {name} gauge",
            f"{name} {1 if stats['database_ok'] else 0}",
        ]
    return lines
