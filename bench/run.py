"""Side-by-side benchmark of switchpoint, LiteLLM's proxy and Portkey's gateway on one machine.

    python bench/run.py                      # 3 interleaved rounds x 15 s per run, all targets
    python bench/run.py --quick              # 1 round x 5 s, for a quick look
    python bench/run.py --targets direct,litellm
    python bench/run.py --no-translate --workers 0   # only the side-by-side scenarios
    python bench/run.py --soak 600 --soak-target switchpoint

See docs/benchmarks.md for what it installs, what it measures and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import measure
import report
import targets as tg
from measure import Load, RssSampler, tree_cpu_by_pid, tree_cpu_ms, tree_rss_kb
from targets import Endpoint, Processes, Running, TargetFailed

LUA = tg.BENCH / "lua" / "post.lua"
RESULTS = tg.BENCH / "results"


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: bool
    connections: int
    #: switchpoint only: the OpenAI-dialect request goes to its Anthropic-family alias
    #: (``bench-translate``), so it is translated to the Messages API and the answer back.
    translate: bool = False

    @property
    def base(self) -> str:
        """The passthrough scenario with the same load: the baseline of a translate scenario."""
        return f"{'stream' if self.stream else 'plain'} c{self.connections}"


@dataclass
class Live:
    """A target that is up: its process (nginx itself for ``direct``) and how to reach it."""

    run: Running
    ep: Endpoint
    idle_rss_kb: int = 0
    stream_frames: int = 0
    translate_frames: int = 0
    processes: int = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=",".join(tg.ALL_TARGETS), help="comma list of %(default)s")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    p.add_argument("--connections", default="64,4", help="wrk connection counts (default %(default)s)")
    p.add_argument(
        "--ttfb-duration",
        type=float,
        default=5.0,
        help="seconds per TTFB run at -c4, 0 = off (default %(default)s)",
    )
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per mode (default %(default)s)")
    p.add_argument("--ready-timeout", type=float, default=90.0, help="seconds to wait for a target to answer")
    p.add_argument("--quick", action="store_true", help="1 round x 5 s runs, 3 s TTFB, 1 s warm-up")
    p.add_argument(
        "--no-translate",
        action="store_true",
        help="skip switchpoint's translation scenarios (OpenAI client -> Anthropic upstream)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="also run switchpoint with N worker processes in every passthrough scenario, "
        "0 = off (default %(default)s)",
    )
    p.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=600.0,
        default=None,
        metavar="SECONDS",
        help="soak mode (600 s)",
    )
    p.add_argument("--soak-target", default="switchpoint", help="target for --soak (default %(default)s)")
    p.add_argument(
        "--soak-connections", type=int, default=16, help="connections for --soak (default %(default)s)"
    )
    p.add_argument(
        "--python",
        type=Path,
        default=None,
        metavar="PATH",
        help="interpreter for switchpoint and LiteLLM, each in a venv of its own under bench/.work "
        "(default: switchpoint from .venv, LiteLLM on the Python running this script)",
    )
    p.add_argument("--no-save", action="store_true", help="do not write results JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.ttfb_duration, args.warmup = 5.0, 1, 3.0, 1.0
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in names if t not in tg.KNOWN_TARGETS]
    if unknown:
        p.error(f"unknown targets: {', '.join(unknown)} (known: {', '.join(tg.KNOWN_TARGETS)})")
    if args.workers == 1 or args.workers < 0:
        p.error("--workers: 0 (off) or at least 2 (one worker is the switchpoint target itself)")
    args.target_list = names
    args.connection_list = [int(c) for c in args.connections.split(",")]
    args.translate = not args.no_translate and "switchpoint" in names
    args.workers_target = tg.workers_target(args.workers) if args.workers and "switchpoint" in names else None
    return args


def measured_targets(args: argparse.Namespace) -> list[str]:
    """The targets asked for, plus switchpoint with ``--workers N`` right after switchpoint."""
    out: list[str] = []
    for name in args.target_list:
        out.append(name)
        if name == "switchpoint" and args.workers_target:
            out.append(args.workers_target)
    return out


def scenarios(connections: list[int]) -> list[Scenario]:
    return [
        Scenario(f"{'stream' if stream else 'plain'} c{c}", stream, c)
        for stream in (False, True)
        for c in connections
    ]


def translate_scenarios(connections: list[int]) -> list[Scenario]:
    return [Scenario(f"translate {s.name}", s.stream, s.connections, True) for s in scenarios(connections)]


def run_order(base: list[Scenario], translate: list[Scenario]) -> list[Scenario]:
    """Each translate scenario right after its passthrough one, so drift hits both alike."""
    out: list[Scenario] = []
    for scen in base:
        out.append(scen)
        out += [t for t in translate if t.base == scen.name]
    return out


def runs_on(scen: Scenario, name: str, saturation: int) -> bool:
    """Translation is switchpoint's alone; every other scenario runs on every target (the
    multi-worker switchpoint too: its scaling is read at ``saturation``, its latency at the
    lower counts)."""
    if scen.translate:
        return name == "switchpoint"
    return True


def _load(ep: Endpoint, connections: int, duration_s: float, stream: str, model: str | None = None) -> Load:
    return Load(ep.port, connections, duration_s, stream, model or ep.model, ep.headers)


def warm_up(ep: Endpoint, seconds: float, model: str | None = None) -> None:
    for stream in ("0", "1"):
        measure.run_wrk(_load(ep, 4, seconds, stream, model), LUA)


def start_upstream(procs: Processes, timeout_s: float) -> Live:
    port = tg.free_port()
    run = tg.start_upstream(procs, port)
    live = Live(run, tg.direct_endpoint(port))
    tg.wait_ready(run, live.ep, timeout_s)
    live.stream_frames = tg.check_stream(live.ep)
    return live


def start_gateway(procs: Processes, name: str, upstream: Live, args: argparse.Namespace) -> Live:
    print(f"starting {name} ...", flush=True)
    t0 = time.monotonic()
    try:
        run, ep = tg.launch(procs, name, upstream.ep.port, args.python)
    except subprocess.CalledProcessError as exc:
        raise TargetFailed(f"{name}: install step failed: {exc}") from exc
    translate = args.translate and name == "switchpoint"
    try:
        tg.wait_ready(run, ep, args.ready_timeout)
        if name in tg.GOVERNED_TARGETS:  # from here on, a limited virtual key
            ep = tg.governed_endpoint(ep)
        live = Live(run, ep)
        live.stream_frames = tg.check_stream(ep)
        if translate:
            live.translate_frames = tg.check_translation(replace(ep, model=tg.TRANSLATE_MODEL))
        print(f"  {name} ready in {time.monotonic() - t0:.1f} s on port {ep.port}; warming up", flush=True)
        warm_up(ep, args.warmup)
        if translate:
            warm_up(ep, args.warmup, tg.TRANSLATE_MODEL)
        time.sleep(1.0)
        live.processes = len(tree_cpu_by_pid(run.proc.pid))
        workers = tg.switchpoint_workers(name) or 1
        if workers > 1 and live.processes < workers + 1:
            raise TargetFailed(
                f"{name}: {live.processes} process(es) after warm-up, expected a supervisor and "
                f"{workers} workers\n{tg.log_tail(run.log)}"
            )
    except (TargetFailed, measure.WrkError):
        procs.stop(run)
        raise
    live.idle_rss_kb = tree_rss_kb(run.proc.pid)
    if live.processes > 1:
        print(f"  {name}: {live.processes} processes, idle RSS {live.idle_rss_kb / 1024:.1f} MB", flush=True)
    return live


def measure_run(
    live: Live, upstream: Live, idle: list[Live], scen: Scenario, duration_s: float, rnd: int
) -> dict[str, Any]:
    """One wrk run against ``live``; ``idle`` are the other gateways, whose CPU is recorded too."""
    root, up = live.run.proc.pid, upstream.run.proc.pid
    model = tg.TRANSLATE_MODEL if scen.translate else None
    idle_cpu0 = sum(tree_cpu_ms(i.run.proc.pid) for i in idle)
    by0, up0, n0 = tree_cpu_by_pid(root), tree_cpu_ms(up), tg.upstream_requests(upstream.ep.port)
    with RssSampler(root) as rss:
        load = _load(live.ep, scen.connections, duration_s, "1" if scen.stream else "0", model)
        res = measure.run_wrk(load, LUA)
    by1, up1, n1 = tree_cpu_by_pid(root), tree_cpu_ms(up), tg.upstream_requests(upstream.ep.port)
    idle_cpu1 = sum(tree_cpu_ms(i.run.proc.pid) for i in idle)
    # Over the whole tree (every worker of a multi-process server, and reaped children).
    cpu0, cpu1 = sum(by0.values()), sum(by1.values())
    return {
        "round": rnd,
        "scenario": scen.name,
        "target": live.ep.name,
        "connections": scen.connections,
        "stream": scen.stream,
        "requests": res.requests,
        "duration_s": res.duration_s,
        "rps": res.rps,
        "p50_ms": res.p50_ms,
        "p90_ms": res.p90_ms,
        "p99_ms": res.p99_ms,
        "max_ms": res.max_ms,
        "errors": res.errors,
        "cpu_ms": cpu1 - cpu0,
        "cpu_ms_per_req": (cpu1 - cpu0) / res.requests if res.requests else math.nan,
        "upstream_cpu_ms": up1 - up0,
        # The status request itself is counted once in n1.
        "upstream_requests": n1 - n0 - 1,
        "rss_peak_kb": rss.peak_kb,
        "idle_gateways_cpu_ms": idle_cpu1 - idle_cpu0,
        "processes": len(by1),
        "busy_processes": measure.busy_processes(by0, by1),
    }


def measure_ttfb(live: Live, duration_s: float, rnd: int, translate: bool = False) -> dict[str, Any]:
    model = tg.TRANSLATE_MODEL if translate else None
    res = measure.run_ttfb(_load(live.ep, 4, duration_s, "1", model))
    scenario = "translate stream c4" if translate else "stream c4"
    return {"round": rnd, "scenario": scenario, "target": live.ep.name, **asdict(res)}


def _ttfb_progress(t: dict[str, Any]) -> None:
    print(
        f"  r{t['round']} ttfb {t['scenario']:<20} {t['target']:<14} TTFB p50 {t['ttfb_p50_ms']:.2f}"
        f" p99 {t['ttfb_p99_ms']:.2f}  TTLB p50 {t['ttlb_p50_ms']:.2f} ms  err {t['errors']}",
        flush=True,
    )


def _progress(rec: dict[str, Any]) -> None:
    errors = sum(rec["errors"].values())
    if rec["target"] != "direct" and rec["upstream_requests"] < rec["requests"]:
        print(
            f"  WARNING: {rec['target']} completed {rec['requests']} requests but the upstream saw only "
            f"{rec['upstream_requests']}: some answers did not come from the upstream",
            flush=True,
        )
    print(
        f"  r{rec['round']} {rec['scenario']:<20} {rec['target']:<14} {rec['rps']:>9.1f} req/s"
        f"  p50 {rec['p50_ms']:>8.2f}  p99 {rec['p99_ms']:>8.2f} ms"
        f"  cpu {rec['cpu_ms_per_req']:>7.3f} ms/req  err {errors}"
        + (f"  busy processes {rec['busy_processes']}/{rec['processes']}" if rec["processes"] > 1 else ""),
        flush=True,
    )


def _alive(live: dict[str, Live], failures: dict[str, str]) -> None:
    """Drop gateways whose process died during the run."""
    for name in [n for n in live if n != "direct"]:
        code = live[name].run.proc.poll()
        if code is not None:
            failures[name] = (
                f"{name} exited with code {code} during the run\n{tg.log_tail(live[name].run.log)}"
            )
            print(failures[name], file=sys.stderr, flush=True)
            del live[name]


def benchmark(args: argparse.Namespace, procs: Processes) -> int:
    tg.ensure_tools()
    upstream = start_upstream(procs, 20.0)
    print(f"fake upstream (nginx) on port {upstream.ep.port}", flush=True)
    names = measured_targets(args)
    live: dict[str, Live] = {}
    if "direct" in names:
        warm_up(upstream.ep, args.warmup)
        upstream.idle_rss_kb = tree_rss_kb(upstream.run.proc.pid)
        upstream.processes = len(tree_cpu_by_pid(upstream.run.proc.pid))
        live["direct"] = upstream
    failures: dict[str, str] = {}
    for name in [t for t in names if t != "direct"]:
        try:
            live[name] = start_gateway(procs, name, upstream, args)
        except (TargetFailed, measure.WrkError) as exc:
            failures[name] = str(exc)
            print(f"FAILED: {exc}", file=sys.stderr, flush=True)
    base = scenarios(args.connection_list)
    extra = translate_scenarios(args.connection_list) if args.translate else []
    saturation = max(args.connection_list)
    records: list[dict[str, Any]] = []
    ttfb: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        print(f"round {rnd}/{args.rounds}", flush=True)
        gws = [n for n in names if n in live and n != "direct"]
        shift = (rnd - 1) % len(gws) if gws else 0
        order = (["direct"] if "direct" in live else []) + gws[shift:] + gws[:shift]
        for scen in run_order(base, extra):
            for name in order:
                if name not in live or not runs_on(scen, name, saturation):
                    continue
                try:
                    others = [lv for n, lv in live.items() if n not in ("direct", name)]
                    rec = measure_run(live[name], upstream, others, scen, args.duration, rnd)
                except measure.WrkError as exc:
                    print(f"  {name} {scen.name}: {exc}", file=sys.stderr, flush=True)
                    _alive(live, failures)
                    continue
                records.append(rec)
                _progress(rec)
        if args.ttfb_duration > 0:
            for name in [n for n in order if n in live and (tg.switchpoint_workers(n) or 1) == 1]:
                ttfb.append(measure_ttfb(live[name], args.ttfb_duration, rnd))
                _ttfb_progress(ttfb[-1])
                if name == "switchpoint" and args.translate:
                    ttfb.append(measure_ttfb(live[name], args.ttfb_duration, rnd, translate=True))
                    _ttfb_progress(ttfb[-1])
        _alive(live, failures)
    idle = {name: lv.idle_rss_kb for name, lv in live.items()}
    order = [n for n in names if any(r["target"] == n for r in records)]
    scen_names = [sc.name for sc in base + extra]
    baselines = {sc.name: sc.base for sc in extra}
    rows = report.summarize(records, ttfb, idle, order, scen_names, baselines)
    checks = report.checks(rows, workers_target=args.workers_target, saturation=saturation)
    info = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": tg.machine(),
        "versions": tg.versions(args.python),
        "interpreter": tg.interpreter(args.python),
        "settings": {
            "targets": args.target_list,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connection_list,
            "ttfb_duration_s": args.ttfb_duration,
            "warmup_s": args.warmup,
            "translate": args.translate,
            "workers": args.workers if args.workers_target else 0,
            "workers_connections": saturation,
        },
        "stream_frames": {name: lv.stream_frames for name, lv in live.items()},
        "translate_stream_frames": {n: lv.translate_frames for n, lv in live.items() if lv.translate_frames},
        "processes": {name: lv.processes for name, lv in live.items()},
        "failures": failures,
    }
    print_report(rows, checks, info)
    if not args.no_save:
        save(
            "bench",
            {
                **info,
                "summary": [asdict(r) for r in rows],
                "checks": [asdict(c) for c in checks],
                "records": records,
                "ttfb": ttfb,
            },
        )
    return 1 if failures else 0


def print_report(rows: list[report.Row], checks: list[report.Check], info: dict[str, Any]) -> None:
    m, v = info["machine"], info["versions"]
    print()
    print(f"## Results ({info['date']})")
    print()
    print(f"Machine: {m['nproc']} cores, {m['cpu']}, {m['memory']}, Linux {m['kernel']}.")
    print("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".")
    s = info["settings"]
    extras = []
    if s["translate"]:
        extras.append(f"translation scenarios (model {tg.TRANSLATE_MODEL}, Anthropic upstream)")
    if s["workers"]:
        extras.append(
            f"switchpoint also with --workers {s['workers']} (scaling read at -c{s['workers_connections']})"
        )
    print(
        f"Settings: {s['rounds']} interleaved rounds x {s['duration_s']:g} s per run, "
        f"TTFB runs {s['ttfb_duration_s']:g} s at -c4" + "".join(f"; {e}" for e in extras) + "."
    )
    print()
    print(report.render_main(rows))
    ratios = report.render_ratios(rows)
    if ratios:
        print()
        print(ratios)
    if checks:
        print()
        print(report.render_checks(checks))
    for name, why in info["failures"].items():
        print(f"\n{name} FAILED: {why}")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def save(kind: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%MZ")
    path = RESULTS / f"{stamp}-{kind}.json"
    path.write_text(json.dumps(_clean(data), indent=1) + "\n")
    print(f"\nraw results: {path.relative_to(tg.REPO)}")
    return path


def soak(args: argparse.Namespace, procs: Processes) -> int:
    tg.ensure_tools()
    upstream = start_upstream(procs, 20.0)
    name = args.soak_target
    target = upstream if name == "direct" else start_gateway(procs, name, upstream, args)
    root = target.run.proc.pid
    load = _load(target.ep, args.soak_connections, args.soak, "mixed")
    argv, env = measure.wrk_command(load, LUA)
    print(f"soak: {name}, mixed plain/stream, -c{args.soak_connections}, {args.soak:g} s", flush=True)
    cpu0 = tree_cpu_ms(root)
    t0 = time.monotonic()
    samples: list[tuple[float, int]] = []
    wrk = subprocess.Popen(argv, env={**tg.clean_env({}), **env}, stdout=subprocess.PIPE, text=True)
    try:
        next_at = t0 + 10.0
        while wrk.poll() is None and time.monotonic() < t0 + args.soak + 60:
            time.sleep(0.2)
            if time.monotonic() >= next_at and wrk.poll() is None:
                samples.append((time.monotonic() - t0, tree_rss_kb(root)))
                print(f"  t={samples[-1][0]:5.0f} s  RSS {samples[-1][1] / 1024:8.1f} MB", flush=True)
                next_at += 10.0
        out, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    cpu = tree_cpu_ms(root) - cpu0
    res = measure.parse_wrk_output(out)
    time.sleep(10.0)
    after = tree_rss_kb(root)
    print()
    print(report.render_soak(samples, after))
    cpu_per_req = cpu / res.requests if res.requests else math.nan
    print(
        f"requests: {res.requests} ({res.rps:.1f} req/s), errors: {res.error_count}, "
        f"CPU {cpu_per_req:.3f} ms/req, idle RSS before load {target.idle_rss_kb / 1024:.1f} MB"
    )
    if not args.no_save:
        save(
            f"soak-{name}",
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": tg.machine(),
                "versions": tg.versions(args.python),
                "interpreter": tg.interpreter(args.python),
                "target": name,
                "duration_s": args.soak,
                "connections": args.soak_connections,
                "idle_rss_kb": target.idle_rss_kb,
                "rss_series": [{"t_s": t, "rss_kb": kb} for t, kb in samples],
                "growth_pct": report.growth_pct(samples),
                "rss_after_kb": after,
                "requests": res.requests,
                "rps": res.rps,
                "errors": res.errors,
                "cpu_ms_per_req": cpu_per_req,
            },
        )
    return 0


def _on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    procs = Processes()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    try:
        if args.soak is not None:
            return soak(args, procs)
        return benchmark(args, procs)
    except TargetFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process the benchmark started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.stop_all()
        if any(t in (*tg.LEDGER_TARGETS, *tg.GOVERNED_TARGETS) for t in args.target_list):
            tg.drop_ledgers()


if __name__ == "__main__":
    sys.exit(main())
