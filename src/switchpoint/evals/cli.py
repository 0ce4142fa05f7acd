"""``switchpoint eval``: run a suite (``eval SUITE.yaml --candidates A,B``) and register one
(``eval register SUITE.yaml``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine
from typer.core import TyperGroup

from switchpoint.config import Config
from switchpoint.errors import ConfigError
from switchpoint.evals import registry, report, runner
from switchpoint.evals.evaluate import Gateway, evaluate
from switchpoint.evals.suite import SuiteError, hashes, load
from switchpoint.store.engine import database_url, make_engine

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

    return app
