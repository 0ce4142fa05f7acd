"""The ``switchpoint`` command: serve, check-config, simulate, explain."""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from switchpoint import config as config_mod
from switchpoint import defaults
from switchpoint.errors import ConfigError
from switchpoint.evals import cli as evals_cli

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="switchpoint: one endpoint in front of many LLM providers.",
)
err_console = Console(stderr=True)
out = Console()


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_listening(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the simulator did not start on {host}:{port}")


def start_simulator_thread(host: str = "127.0.0.1", port: int | None = None) -> str:
    """Run the simulated provider in a daemon thread; returns its base URL."""
    from switchpoint.simulator import run as run_simulator

    port = port or _free_port(host)
    thread = threading.Thread(
        target=run_simulator,
        args=(host, port, None),
        kwargs={"quiet": True},
        name="switchpoint-simulator",
        daemon=True,
    )
    thread.start()
    _wait_listening(host, port)
    return f"http://{host}:{port}"


#: Where ``check-config --simulate`` and ``explain --simulate`` pretend the simulator is
#: (``switchpoint simulate``'s default port); nothing is called there.
_SIM_PLACEHOLDER = "http://127.0.0.1:8090"

_SIMULATE_HELP = "Point every provider at the built-in simulator (no provider keys needed)"


def _simulator_base() -> str:
    sim_base = os.environ.get("SWITCHPOINT_SIM_BASE") or start_simulator_thread()
    os.environ["SWITCHPOINT_SIM_BASE"] = sim_base  # workers rebuild the same config
    return sim_base


def _load(path: Path | None, simulate: bool = False) -> config_mod.Config:
    if simulate:
        os.environ["SWITCHPOINT_SIMULATE"] = "1"  # workers too
    if path is not None:
        return defaults.load_simulated(path, _simulator_base()) if simulate else config_mod.load(path)
    sim_base = _simulator_base() if simulate or defaults.needs_simulator() else None
    return defaults.embedded(sim_base, simulate=simulate)


def _check(path: Path, simulate: bool) -> config_mod.Config:
    return defaults.load_simulated(path, _SIM_PLACEHOLDER) if simulate else config_mod.load(path)


def _banner(cfg: config_mod.Config, host: str, port: int, workers: int, simulate: bool = False) -> None:
    out.print(f"[bold]switchpoint[/bold] listening on http://{host}:{port}  (workers: {workers})")
    out.print(f"config: {cfg.source}")
    if cfg.simulated:
        if not simulate:
            why = (
                ": no provider key is set (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, "
                "DEEPSEEK_API_KEY, OLLAMA_HOST), so answers come from the built-in simulator and say so."
            )
        elif cfg.source.startswith("<"):
            why = " (--simulate): the built-in simulated providers, whatever keys are set."
        else:
            why = (
                " (--simulate): every provider of the file points at the built-in simulator; "
                "the deployments, aliases and routing are the file's."
            )
        out.print("[bold yellow]SIMULATED PROVIDERS[/bold yellow]" + why)
    aliases = ", ".join(f"{a} → {'/'.join(d)}" for a, d in cfg.aliases.items()) or "(none)"
    if cfg.routing is not None and (cfg.routing.rules or cfg.routing.default is not None):
        default = " + default" if cfg.routing.default is not None else ""
        aliases = f"auto → routing policy ({len(cfg.routing.rules)} rules{default}), {aliases}"
    out.print(f"models: {aliases}")
    out.print(f"deployments: {', '.join(cfg.deployments) or '(none)'}")
    if cfg.master_key is None:
        err_console.print(
            "[bold red]WARNING: no master key configured — this gateway is OPEN to anyone who can reach it.[/bold red] "
            "Set SWITCHPOINT_MASTER_KEY or server.master_key."
        )


@cli.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config file (default: embedded defaults)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default from config: 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config: 4000)")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "warning",
    shutdown_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight requests and streams get to finish on shutdown")
    ] = 30.0,
    simulate: Annotated[bool, typer.Option("--simulate", help=_SIMULATE_HELP)] = False,
) -> None:
    """Start the gateway."""
    import uvicorn

    from switchpoint.api.server import UVICORN_OPTIONS

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = _load(config, simulate)
    except ConfigError as exc:
        _print_problems(str(config) if config else "embedded defaults", exc)
        raise typer.Exit(2) from None
    bind_host = host or cfg.host
    bind_port = port or cfg.port
    _banner(cfg, bind_host, bind_port, workers, simulate)
    _prepare_ledger(cfg, workers)
    _check_shared_state(cfg, workers)
    common = {
        "host": bind_host,
        "port": bind_port,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": max(1, math.ceil(shutdown_timeout)),
        **UVICORN_OPTIONS,  # the gateway's own HTTP/1.1 protocol; uvicorn runs it
    }
    if workers > 1:
        os.environ["SWITCHPOINT_SHUTDOWN_TIMEOUT"] = str(shutdown_timeout)
        if config is not None:
            os.environ["SWITCHPOINT_CONFIG"] = str(config.resolve())
        uvicorn.run("switchpoint.api.app:app_from_env", factory=True, workers=workers, **common)
        return
    from switchpoint.api.app import create_app, freeze_heap
    from switchpoint.evals.reload_gate import reload_gate

    app = create_app(cfg, shutdown_timeout_s=shutdown_timeout, reload_gate=reload_gate)
    freeze_heap()
    uvicorn.run(app, **common)


def _check_shared_state(cfg: config_mod.Config, workers: int) -> None:
    """Limits, budgets and the queue are shared through ``state.redis_url``: several workers
    without it would each keep their own (N times every limit). Refuse to start then; say which
    state is used otherwise."""
    from switchpoint.governance.gate import ENV_WORKERS, shared_state_problem

    os.environ[ENV_WORKERS] = str(workers)
    if cfg.state.redis_url:
        out.print(f"governance state: Redis (prefix {cfg.state.prefix})", highlight=False)
        return
    problem = shared_state_problem(cfg, workers)
    if problem is not None:
        err_console.print(
            f"[bold red]--workers {workers} needs state.redis_url[/bold red]: {problem}, and "
            "each worker would keep its own count (limits and budgets would not hold). Set "
            "state.redis_url (docs/governance.md), or serve with --workers 1.",
            highlight=False,
        )
        raise typer.Exit(2)
    if workers > 1:
        out.print(
            f"governance state: per process (no state.redis_url); {workers} workers refuse "
            "requests of keys with limits or budgets until it is set",
            highlight=False,
        )


def _prepare_ledger(cfg: config_mod.Config, workers: int) -> None:
    """Before any worker starts: migrate the ledger's database once, and name the instance all
    the workers write as. A database that is down is not fatal (the ledger spills and retries)."""
    if not cfg.storage.enabled:
        return
    from switchpoint.accounting.ledger import ENV_INSTANCE
    from switchpoint.store.engine import database_url, redacted
    from switchpoint.store.migrate import upgrade

    os.environ.setdefault(ENV_INSTANCE, cfg.instance or f"{socket.gethostname()}:{os.getpid()}")
    url = database_url(cfg.storage.url)
    try:
        upgrade(url)
    except Exception as exc:
        err_console.print(
            f"[bold red]ledger database {redacted(url)} is not available[/bold red] ({exc}); "
            "requests are served and their records spill to a file until it is",
            highlight=False,
        )
        return
    out.print(f"ledger: {redacted(url)}", highlight=False)


db_cli = typer.Typer(no_args_is_help=True, help="The ledger's database.")
cli.add_typer(db_cli, name="db")
cli.add_typer(evals_cli.build(_load), name="eval")
cli.command("replay")(evals_cli.replay_command(_load))


@db_cli.command("upgrade")
def db_upgrade(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (its storage.url)")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(help="Database URL (default: SWITCHPOINT_DATABASE_URL, storage.url, ./switchpoint.db)"),
    ] = None,
) -> None:
    """Apply the ledger's migrations (start-up does the same)."""
    from switchpoint.store.engine import database_url, redacted
    from switchpoint.store.migrate import upgrade

    configured = None
    if config is not None:
        try:
            configured = config_mod.load(config).storage.url
        except ConfigError as exc:
            _print_problems(str(config), exc)
            raise typer.Exit(2) from None
    url = database or database_url(configured)
    try:
        revision = upgrade(url)
    except Exception as exc:
        err_console.print(f"[bold red]{redacted(url)}: cannot migrate[/bold red]: {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"{redacted(url)}: at revision {revision}", highlight=False)


def _print_problems(source: str, exc: ConfigError) -> None:
    err_console.print(f"[bold red]{source}: {len(exc.problems)} problem(s)[/bold red]")
    for p in exc.problems:
        err_console.print(f"  - {p}", markup=False, highlight=False)


@cli.command("check-config")
def check_config(
    path: Annotated[Path, typer.Argument(help="YAML config file")],
    simulate: Annotated[bool, typer.Option("--simulate", help=_SIMULATE_HELP)] = False,
) -> None:
    """Validate a config file; print every problem with its path. Exit 0 if valid, 1 if not."""
    try:
        cfg = _check(path, simulate)
    except ConfigError as exc:
        _print_problems(str(path), exc)
        raise typer.Exit(1) from None
    out.print(
        f"[green]{cfg.source}: OK[/green] — {len(cfg.providers)} provider(s), {len(cfg.deployments)} deployment(s), "
        f"{len(cfg.aliases)} alias(es)"
    )


@cli.command()
def simulate(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8090,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML: default and per-model behaviour, seed …")
    ] = None,
) -> None:
    """Run the simulated provider alone (OpenAI, Anthropic and Gemini wire formats)."""
    import msgspec
    import yaml

    from switchpoint.simulator import SimConfig
    from switchpoint.simulator import run as run_simulator

    sim_config = None
    if config is not None:
        try:
            sim_config = msgspec.convert(yaml.safe_load(config.read_text()) or {}, SimConfig)
        except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
            err_console.print(f"[bold red]{config}: {exc}[/bold red]", highlight=False)
            raise typer.Exit(2) from None

    out.print(f"[bold]switchpoint simulator[/bold] on http://{host}:{port}")
    out.print(f"  OpenAI:    http://{host}:{port}/openai/v1")
    out.print(f"  Anthropic: http://{host}:{port}/anthropic")
    out.print(f"  Gemini:    http://{host}:{port}/gemini/v1beta")
    run_simulator(host, port, sim_config)


def _explain_table(trace: dict[str, Any]) -> None:
    from rich.table import Table

    task = trace["task"] if trace["task"] is not None else "-"
    out.print(
        f"model [bold]{trace['model']}[/bold]  rule [bold]{trace['rule'] or '(direct)'}[/bold]  "
        f"task [bold]{task}[/bold] ({trace['task_source'] or '-'})  strategy [bold]{trace['strategy']}[/bold]",
        highlight=False,
    )
    exact = "counted" if trace["prompt_tokens_exact"] else "estimated"
    out.print(f"prompt ~{trace['prompt_tokens']} tokens ({exact}), output {trace['output_tokens']} tokens")
    table = Table("#", "deployment", "upstream model", f"est. cost ({trace['currency']})", "why here")
    for i, c in enumerate(trace["candidates"], 1):
        cost = "-" if c["est_cost"] is None else f"{c['est_cost']:.6f}"
        table.add_row(str(i), c["deployment"], c["upstream_model"], cost, c["reason"])
    out.print(table)
    for s in trace["skipped"]:
        out.print(f"skipped {s['deployment']}: {s['reason']}", markup=False, highlight=False)
    if trace["presets"]:
        out.print("presets applied: " + ", ".join(trace["presets"]))
    if trace.get("trimmed"):
        out.print(f"context trimmed: {trace['trimmed']}")


@cli.command()
def explain(
    request_file: Annotated[Path, typer.Argument(help="JSON body of a chat request (OpenAI or Anthropic)")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config file")],
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Request header 'name: value' (repeatable)")
    ] = None,
    dialect: Annotated[str | None, typer.Option(help="openai or anthropic (default: from the body)")] = None,
    principal: Annotated[str, typer.Option(help="Caller to route as")] = "master",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full trace as JSON")] = False,
    simulate: Annotated[bool, typer.Option("--simulate", help=_SIMULATE_HELP)] = False,
) -> None:
    """Dry run: print the routing decision for a request, without calling any model."""
    import msgspec

    from switchpoint.api import route_admin
    from switchpoint.errors import SwitchpointError
    from switchpoint.routing import Router

    try:
        cfg = _check(config, simulate)
    except ConfigError as exc:
        _print_problems(str(config), exc)
        raise typer.Exit(2) from None
    headers: dict[str, str] = {}
    for item in header or ():
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            err_console.print(
                f"--header must look like 'name: value', got {item!r}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2)
        headers[name.strip().lower()] = value.strip()
    try:
        body = request_file.read_bytes()
        wire = route_admin.dialect_for(body, headers, dialect)
        decision = Router(cfg).route(wire.decode_chat(body, headers), headers=headers, principal=principal)
    except OSError as exc:
        err_console.print(f"{request_file}: cannot read ({exc.strerror})", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except SwitchpointError as exc:
        err_console.print(
            f"[bold red]{exc.status} {exc.kind}[/bold red]: {exc.message}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(msgspec.json.encode(decision.trace()).decode())
        return
    _explain_table(decision.trace())
    out.print(f"x-switchpoint-route: {decision.header()}", markup=False, highlight=False, soft_wrap=True)


def _usage_table(doc: dict[str, Any], title: str) -> None:
    from rich.table import Table

    code = doc["currency"]["code"]
    shown = code != "USD"
    table = Table(title=title, show_footer=True)
    totals = doc["totals"]
    for i, g in enumerate(doc["group_by"]):
        table.add_column(g, footer="total" if i == 0 else "")
    metrics: list[tuple[str, str, Any]] = [
        ("requests", "requests", totals["requests"]),
        ("errors", "errors", totals["errors"]),
        ("input", "input_tokens", totals["input_tokens"]),
        ("cached", "cached_input_tokens", totals["cached_input_tokens"]),
        ("output", "output_tokens", totals["output_tokens"]),
        ("reasoning", "reasoning_tokens", totals["reasoning_tokens"]),
        ("cost USD", "cost_usd", totals["cost_usd"]),
    ]
    if shown:
        metrics.append((f"cost {code}", f"cost_{code.lower()}", totals[f"cost_{code.lower()}"]))
    metrics += [("p50 ms", "latency_p50_ms", None), ("p95 ms", "latency_p95_ms", None)]

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-"
        if key.startswith("cost_"):
            return f"{value:,.4f}"
        if key.endswith("_ms"):
            return f"{value:,.0f}"
        return f"{value:,}"

    if not doc["group_by"]:
        table.add_column("", footer="total")
    for header, key, total in metrics:
        table.add_column(header, justify="right", footer=cell(key, total) if total is not None else "")
    for row in doc["data"]:
        keys = [str(row[g]) if row[g] is not None else "-" for g in doc["group_by"]] or ["all"]
        table.add_row(*keys, *(cell(key, row[key]) for _, key, _ in metrics))
    out.print(table)


@cli.command()
def usage(
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Group by: deployment, alias, provider, task, key, team, session, day, hour (a comma list)",
        ),
    ] = "deployment",
    since: Annotated[
        str, typer.Option(help="From: 7d, 24h, 30m, an ISO date/time (UTC) or epoch seconds")
    ] = "7d",
    until: Annotated[str | None, typer.Option(help="Until (exclusive), same forms as --since")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (its storage.url and display currency)")
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="Database URL (overrides the config's storage.url)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """Usage and spend from the ledger, as a table (or JSON / CSV)."""
    import msgspec

    from switchpoint.api.ledger_admin import parse_time, usage_csv, usage_document
    from switchpoint.config.accounting import DisplayCurrency
    from switchpoint.errors import SwitchpointError
    from switchpoint.store import queries
    from switchpoint.store.engine import database_url, make_engine, redacted

    currency, url = DisplayCurrency(), None
    if config is not None:
        try:
            cfg = config_mod.load(config)
        except ConfigError as exc:
            _print_problems(str(config), exc)
            raise typer.Exit(2) from None
        currency, url = cfg.currency, cfg.storage.url
    url = database or database_url(url)
    if fmt not in ("table", "json", "csv"):
        err_console.print("--format must be table, json or csv")
        raise typer.Exit(2)
    try:
        groups = queries.check_groups([g.strip() for g in by.split(",") if g.strip()])
        start = parse_time(since, "--since") if since else None
        end = parse_time(until, "--until") if until else None
    except (queries.QueryError, SwitchpointError) as exc:
        err_console.print(str(exc), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    engine = make_engine(url)
    try:
        rows = queries.usage(engine, groups, start, end)
    except Exception as exc:
        err_console.print(
            f"cannot read the ledger at {redacted(url)}: {type(exc).__name__}: {exc}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    doc = usage_document(rows, groups, start, end, currency)
    if fmt == "json":
        out.print_json(msgspec.json.encode(doc).decode())
    elif fmt == "csv":
        sys.stdout.write(usage_csv(doc))
    else:
        _usage_table(doc, f"usage since {since} by {', '.join(groups) or 'all'} ({redacted(url)})")


@cli.command()
def top(
    url: Annotated[str, typer.Option(help="The running gateway (reads /admin/usage and /admin/breakers)")] = (
        "http://127.0.0.1:4000"
    ),
    key: Annotated[
        str | None,
        typer.Option(
            help="Master key or an admin key (default: $SWITCHPOINT_MASTER_KEY)", show_default=False
        ),
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="Read this ledger database instead of a gateway (no breakers)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="With --database: the config's display currency")
    ] = None,
    since: Annotated[str, typer.Option(help="Window: 15m, 1h, 24h, 7d, or a time (UTC)")] = "1h",
    interval: Annotated[float, typer.Option(help="Seconds between refreshes")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit")] = False,
) -> None:
    """A live terminal view: requests, errors, latency, spend and breakers per deployment."""
    from switchpoint.config.accounting import DisplayCurrency
    from switchpoint.console import top as top_view

    source: top_view.HttpSource | top_view.DatabaseSource
    if database is not None:
        currency = config_mod.load(config).currency if config is not None else DisplayCurrency()
        source = top_view.DatabaseSource(database, currency)
    else:
        source = top_view.HttpSource(url, key or os.environ.get("SWITCHPOINT_MASTER_KEY"))
    try:
        top_view.since_of(since)
        top_view.run(source, since, interval_s=max(0.2, interval), once=once, console=out)
    except KeyboardInterrupt:
        return
    except Exception as exc:
        err_console.print(f"switchpoint top: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


keys_cli = typer.Typer(no_args_is_help=True, help="Virtual keys (in the ledger's database).")
teams_cli = typer.Typer(no_args_is_help=True, help="Teams (in the ledger's database).")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(teams_cli, name="teams")

_ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (its storage.url, state)")
]
_DatabaseOpt = Annotated[str | None, typer.Option(help="Database URL (overrides the config's storage.url)")]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _governed(config: Path | None, database: str | None, change: Any) -> Any:
    """Run ``change(engine)`` on the keys' database (migrated first); announce it to running
    gateways over Redis when the config has ``state.redis_url`` (they also poll the database)."""
    from switchpoint.errors import SwitchpointError
    from switchpoint.governance.keys import publish_sync, redis_settings
    from switchpoint.store import keys as store
    from switchpoint.store.engine import database_url, make_engine, redacted
    from switchpoint.store.migrate import upgrade

    cfg = None
    if config is not None:
        try:
            cfg = config_mod.load(config)
        except ConfigError as exc:
            _print_problems(str(config), exc)
            raise typer.Exit(2) from None
    url = database or database_url(cfg.storage.url if cfg is not None else None)
    engine = make_engine(url)
    try:
        upgrade(engine)
        before = store.current_version(engine)
        result = change(engine)
        after = store.current_version(engine)
    except SwitchpointError as exc:
        err_console.print(exc.message, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        err_console.print(f"{redacted(url)}: {type(exc).__name__}: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if cfg is not None and after != before:
        redis_url, prefix = redis_settings(cfg)
        publish_sync(redis_url, f"{prefix}governance:changes", after)
    return result


def _print_doc(doc: Any, as_json: bool) -> None:
    import msgspec

    if as_json:
        out.print_json(msgspec.json.encode(doc).decode())
        return
    for name, value in doc.items():
        if name != "object":
            out.print(f"{name}: {value}", highlight=False, markup=False)


def _key_spec(**given: Any) -> Any:
    from switchpoint.governance import manage

    fields: dict[str, Any] = {}
    for name in ("name", "team", "priority", "expires_in", "expires_at"):
        if given.get(name) is not None:
            fields[name] = given[name]
    for name, opt in (("roles", "role"), ("allowed_aliases", "alias"), ("tags", "tag")):
        if given.get(opt):
            fields[name] = list(given[opt])
    limits = {k: given[k] for k in ("rpm", "tpm", "max_parallel") if given.get(k) is not None}
    budgets = {
        k: given[f"budget_{k}"]
        for k in ("daily", "weekly", "monthly", "total")
        if given.get(f"budget_{k}") is not None
    }
    if limits:
        fields["limits"] = manage.LimitsIn(**limits)
    if budgets:
        fields["budgets"] = manage.BudgetsIn(**budgets)
    return manage.KeyIn(**fields)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="The key's name (routing rules and the ledger see it)")],
    team: Annotated[str | None, typer.Option(help="Team id or name")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Role (admin); repeatable")] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Allowed model (glob); repeatable")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    max_parallel: Annotated[int | None, typer.Option(help="Requests in flight")] = None,
    budget_daily: Annotated[float | None, typer.Option(help="USD per day")] = None,
    budget_weekly: Annotated[float | None, typer.Option(help="USD per week")] = None,
    budget_monthly: Annotated[float | None, typer.Option(help="USD per month")] = None,
    budget_total: Annotated[float | None, typer.Option(help="USD in total")] = None,
    priority: Annotated[str | None, typer.Option(help="Default priority: high, normal, low")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag; repeatable")] = None,
    expires_in: Annotated[str | None, typer.Option(help="Lifetime: 30d, 12h, seconds")] = None,
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Create a key; its secret is printed this once."""
    from switchpoint.governance import manage

    spec = _key_spec(**locals())
    doc, secret = _governed(config, database, lambda engine: manage.create_key(engine, spec))
    _print_doc({**doc, "secret": secret}, as_json)
    if not as_json:
        err_console.print("Store the secret now: it is not shown again.")


@keys_cli.command("list")
def keys_list(
    team: Annotated[str | None, typer.Option(help="Only this team's keys")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys")] = False,
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """The keys (never their secrets)."""
    from rich.table import Table

    from switchpoint.governance import manage

    docs = _governed(config, database, lambda e: manage.list_keys(e, team=team, include_revoked=revoked))
    if as_json:
        _print_doc({"object": "list", "data": docs}, True)
        return
    table = Table("id", "name", "prefix", "status", "team", "roles", "aliases", "expires_at")
    for d in docs:
        team_name = d["team"]["name"] if d["team"] else ""
        expires = (
            "" if d["expires_at"] is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(d["expires_at"]))
        )
        table.add_row(
            d["id"], d["name"], d["prefix"], d["status"], team_name,
            ",".join(d["roles"]), ",".join(d["allowed_aliases"]) or "*", expires,
        )  # fmt: skip
    out.print(table)


@keys_cli.command("show")
def keys_show(
    key_id: Annotated[str, typer.Argument(help="Key id")],
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """One key."""
    from switchpoint.governance import manage

    _print_doc(_governed(config, database, lambda e: manage.get_key(e, key_id)), as_json)


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id")],
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Revoke a key (every gateway refuses it within a second)."""
    from switchpoint.governance import manage

    _print_doc(_governed(config, database, lambda e: manage.revoke_key(e, key_id)), as_json)


@keys_cli.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="Key id")],
    grace: Annotated[float, typer.Option(help="Seconds the old secret keeps working")] = 3600.0,
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """A new secret for a key (printed this once); the old one works for --grace seconds."""
    from switchpoint.governance import manage

    doc, secret = _governed(config, database, lambda e: manage.rotate_key(e, key_id, grace))
    _print_doc({**doc, "secret": secret}, as_json)


@teams_cli.command("create")
def teams_create(
    name: Annotated[str, typer.Argument(help="The team's name")],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (all its keys)")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute")] = None,
    max_parallel: Annotated[int | None, typer.Option(help="Requests in flight")] = None,
    budget_daily: Annotated[float | None, typer.Option(help="USD per day")] = None,
    budget_weekly: Annotated[float | None, typer.Option(help="USD per week")] = None,
    budget_monthly: Annotated[float | None, typer.Option(help="USD per month")] = None,
    budget_total: Annotated[float | None, typer.Option(help="USD in total")] = None,
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """Create a team."""
    from switchpoint.governance import manage

    key = _key_spec(**locals())
    spec = manage.TeamIn(name=name, limits=key.limits, budgets=key.budgets)
    _print_doc(_governed(config, database, lambda e: manage.create_team(e, spec)), as_json)


@teams_cli.command("list")
def teams_list(config: _ConfigOpt = None, database: _DatabaseOpt = None, as_json: _JsonOpt = False) -> None:
    """The teams."""
    from rich.table import Table

    from switchpoint.governance import manage

    docs = _governed(config, database, manage.list_teams)
    if as_json:
        _print_doc({"object": "list", "data": docs}, True)
        return
    table = Table("id", "name", "rpm", "tpm", "max_parallel", "budget/day", "budget/month")
    for d in docs:
        lim, bud = d["limits"], d["budgets"]
        cells = (lim["rpm"], lim["tpm"], lim["max_parallel"], bud["daily"], bud["monthly"])
        table.add_row(d["id"], d["name"], *("" if v is None else str(v) for v in cells))
    out.print(table)


@teams_cli.command("show")
def teams_show(
    team: Annotated[str, typer.Argument(help="Team id or name")],
    config: _ConfigOpt = None,
    database: _DatabaseOpt = None,
    as_json: _JsonOpt = False,
) -> None:
    """One team."""
    from switchpoint.governance import manage

    _print_doc(_governed(config, database, lambda e: manage.get_team(e, team)), as_json)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
