"""``switchpoint eval``: run a suite (``eval SUITE.yaml --candidates A,B``) and register one
(``eval register SUITE.yaml``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from typer.core import TyperGroup

from switchpoint.config import Config
from switchpoint.errors import ConfigError
from switchpoint.evals import registry, replay_exec, report, runner
from switchpoint.evals.evaluate import Gateway, evaluate
from switchpoint.evals.replay import ReplayReport, replay
from switchpoint.evals.suite import SuiteError, hashes, load
from switchpoint.store.engine import database_url, make_engine
from switchpoint.store.evals import logged_requests

#: (config file or None, --simulate) → the config, as ``switchpoint serve`` would load it.
LoadConfig = Callable[[Path | None, bool], Config]


class _RunByDefault(TyperGroup):
    """``eval SUITE.yaml …`` is ``eval run SUITE.yaml …``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _engine(db: str | None, cfg: Config | None) -> Engine:
    """``--db`` first, else the ledger's database (``SWITCHPOINT_DATABASE_URL``, then the config's)."""
    engine = make_engine(db or database_url(cfg.storage.url if cfg is not None else None))
    registry.prepare(engine)
    return engine


def build(load_config: LoadConfig) -> typer.Typer:
    app = typer.Typer(cls=_RunByDefault, no_args_is_help=True, help="Evals: run a suite against candidates.")
    console = Console(stderr=True)

    def fail(message: str) -> None:
        console.print(f"[red]error:[/] {message}")
        raise typer.Exit(2)

    @app.command("run")
    def run_cmd(
        suite_path: Annotated[Path, typer.Argument(metavar="SUITE.yaml", help="The suite file")],
        candidates: Annotated[
            str, typer.Option("--candidates", "-c", help="Aliases, deployments or policy files")
        ],
        config: Annotated[Path | None, typer.Option("--config", help="The gateway's config file")] = None,
        simulate: Annotated[
            bool, typer.Option("--simulate", help="Providers point at the simulator")
        ] = False,
        url: Annotated[
            str | None, typer.Option("--url", help="A running gateway instead of one in process")
        ] = None,
        api_key: Annotated[str | None, typer.Option("--api-key", envvar="SWITCHPOINT_EVAL_KEY")] = None,
        concurrency: Annotated[
            int | None, typer.Option(min=1, help="Cases in flight (default: suite's)")
        ] = None,
        state_dir: Annotated[Path, typer.Option(help="Where the resumable state files go")] = Path(
            ".switchpoint-evals"
        ),
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here")] = None,
        html_out: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here")] = None,
        db: Annotated[str | None, typer.Option("--db", help="Database URL (default: the ledger's)")] = None,
        progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
    ) -> None:
        """Run SUITE.yaml for every candidate; exit 1 when a challenger fails the suite's gate."""
        try:
            suite = load(suite_path)
            cands = runner.parse_candidates(candidates, suite)
            cfg = load_config(config, simulate)
        except (SuiteError, ValueError) as exc:
            fail(str(exc))
            return
        except ConfigError as exc:
            fail(exc.message)
            return
        engine = _engine(db, cfg)
        try:
            rep = asyncio.run(
                evaluate(
                    suite,
                    cands,
                    Gateway(config=cfg, url=url, api_key=api_key),
                    load_policy=lambda p: load_config(Path(p), simulate),
                    state_dir=state_dir,
                    engine=engine,
                    concurrency=concurrency,
                    progress=progress and console.is_terminal,
                )
            )
        except SuiteError as exc:
            fail(str(exc))
            return
        except ConfigError as exc:  # a policy file that does not load
            fail(exc.message)
            return
        finally:
            engine.dispose()
        report.print_report(rep, Console())
        if json_out is not None:
            json_out.write_bytes(report.to_json(rep))
        if html_out is not None:
            html_out.write_text(report.to_html(rep))
        raise typer.Exit(rep.exit_code)

    @app.command("register")
    def register_cmd(
        suite_path: Annotated[Path, typer.Argument(metavar="SUITE.yaml")],
        config: Annotated[
            Path | None, typer.Option("--config", help="The gateway's config file (its database)")
        ] = None,
        db: Annotated[str | None, typer.Option("--db", help="Database URL (default: the ledger's)")] = None,
    ) -> None:
        """Store the suite's hashes (cases, checks, rubric, gate) before any run."""
        try:
            suite = load(suite_path)
        except SuiteError as exc:
            fail(str(exc))
            return
        cfg = load_config(config, False) if config is not None else None
        engine = _engine(db, cfg)
        try:
            h = hashes(suite)
            reg = registry.register(engine, suite.name, h)
        finally:
            engine.dispose()
        typer.echo(
            f"registered {suite.name}: cases {h.cases[:12]}, rubric {h.rubric[:12]}, gate {h.gate[:12]} ({reg.id})"
        )

    @app.command("shadow")
    def shadow_cmd(
        since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d …")] = "1d",
        gate: Annotated[
            Path | None, typer.Option("--gate", help="Judge the copies by this suite's gate")
        ] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="The gateway's config file (its database)")
        ] = None,
        db: Annotated[str | None, typer.Option("--db", help="Database URL (default: the ledger's)")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here")] = None,
    ) -> None:
        """Compare live requests with their shadow copies in the ledger, as an eval (exit 1 when
        the copies fail --gate)."""
        try:
            suite = load(gate) if gate is not None else None
            if suite is not None and suite.gate is None:
                raise SuiteError(f"{gate}: the suite has no gate")
            cfg = load_config(config, False) if config is not None else None
        except SuiteError as exc:
            fail(str(exc))
            return
        engine = _engine(db, cfg)
        try:
            rows = logged_requests(engine, time.time() - span_s(since))
            status = (
                registry.status(engine, suite.name, hashes(suite))
                if suite is not None
                else registry.UNREGISTERED
            )
        finally:
            engine.dispose()
        rep, pairs = replay_exec.shadow_report(rows, gate=suite.gate if suite else None, registration=status)
        out = Console()
        out.print(f"{pairs} live request(s) with a shadow copy")
        report.print_report(rep, out)
        if json_out is not None:
            json_out.write_bytes(report.to_json(rep))
        raise typer.Exit(rep.exit_code)

    return app


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def span_s(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` in seconds."""
    m = _SPAN.match(text)
    if m is None:
        raise typer.BadParameter(f"expected a span like 30m, 24h or 7d, got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def print_replay(rep: ReplayReport, console: Console, elapsed_s: float) -> None:
    console.print(
        f"{rep.requests} logged request(s) ({rep.from_bodies} routed on their stored body) in {elapsed_s:.2f} s: "
        f"{rep.changed} would go elsewhere ({rep.changed_rate:.1%}), {rep.unroutable} unroutable"
    )
    diff = rep.replayed_usd - rep.logged_usd
    console.print(f"cost: logged ${rep.logged_usd:.6f}, replayed ${rep.replayed_usd:.6f} ({diff:+.6f} USD)")
    t = Table(title="logged → replayed")
    for col in ("logged", "replayed", "requests", "logged $", "replayed $"):
        t.add_column(col)
    for tr in rep.transitions:
        t.add_row(tr.logged, tr.replayed, str(tr.requests), f"{tr.logged_usd:.6f}", f"{tr.replayed_usd:.6f}")
    console.print(t)
    for reason, n in rep.reasons.items():
        console.print(f"  unroutable ({n}): {reason}")


def replay_command(load_config: LoadConfig) -> Callable[..., None]:
    def replay_cmd(
        policy: Annotated[
            Path, typer.Option("--policy", help="The candidate config file (its routing policy)")
        ],
        since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d …")] = "7d",
        until: Annotated[str | None, typer.Option(help="Up to this long ago (default: now)")] = None,
        limit: Annotated[
            int | None, typer.Option(min=1, help="At most this many requests (oldest first)")
        ] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="The gateway's config file (its database)")
        ] = None,
        db: Annotated[str | None, typer.Option("--db", help="Database URL (default: the ledger's)")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the replay report here")] = None,
        execute: Annotated[
            bool,
            typer.Option("--execute", help="Also send the stored bodies for real, and compare as an eval"),
        ] = False,
        gate: Annotated[
            Path | None, typer.Option("--gate", help="With --execute: judge by this suite's gate")
        ] = None,
        simulate: Annotated[
            bool, typer.Option("--simulate", help="The policy's providers point at the simulator")
        ] = False,
        concurrency: Annotated[int, typer.Option(min=1, help="With --execute: requests in flight")] = 4,
        state_dir: Annotated[Path, typer.Option(help="With --execute: the resumable state")] = Path(
            ".switchpoint-evals"
        ),
    ) -> None:
        """Re-route logged requests through a candidate policy, without calling models: which
        deployment would have served each, how often that differs, the counterfactual cost.
        With --execute, the requests logged with their bodies are sent through it for real."""
        console = Console()
        try:
            gate_suite = load(gate) if gate is not None else None
            if gate_suite is not None and gate_suite.gate is None:
                raise SuiteError(f"{gate}: the suite has no gate")
        except SuiteError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        try:
            candidate = load_config(policy, simulate)
            cfg = load_config(config, False) if config is not None else None
        except ConfigError as exc:
            console.print(f"[red]error:[/] {exc.message}")
            raise typer.Exit(2) from None
        now = time.time()
        engine = make_engine(db or database_url(cfg.storage.url if cfg is not None else None))
        try:
            started = time.perf_counter()
            rows = logged_requests(
                engine, now - span_s(since), now - span_s(until) if until is not None else None, limit
            )
            rep = replay(rows, candidate)
            elapsed = time.perf_counter() - started
            status = registry.UNREGISTERED
            if gate_suite is not None:
                registry.prepare(engine)
                status = registry.status(engine, gate_suite.name, hashes(gate_suite))
        finally:
            engine.dispose()
        print_replay(rep, console, elapsed)
        if json_out is not None:
            json_out.write_bytes(msgspec.json.encode(rep))
        if not execute:
            return
        ran, skipped = asyncio.run(
            replay_exec.execute(
                rows,
                candidate,
                state_dir=state_dir,
                gate=gate_suite.gate if gate_suite is not None else None,
                concurrency=concurrency,
                progress=console.is_terminal,
                name=f"replay-{policy.stem}",
                registration=status,
            )
        )
        console.print(
            f"executed {len(rows) - skipped} request(s) with a stored Chat Completions body ({skipped} without)"
        )
        report.print_report(ran, console)
        raise typer.Exit(ran.exit_code)

    return replay_cmd
