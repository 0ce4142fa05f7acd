"""Runs a suite's cases for every candidate through the gateway, bounded and resumable.

A candidate is an alias or a deployment (asked for by name from the gateway under test) or a
whole config file with its routing policy (a gateway of its own, in process, asked for the
suite's ``model``). Every finished case is appended to the state file at once, so an
interrupted run, started again, does only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from switchpoint.config import Config
from switchpoint.evals import checks as checks_mod
from switchpoint.evals import state
from switchpoint.evals.asgi import StreamingASGITransport
from switchpoint.evals.client import CostOf, Outcome, price_lookup, run_case
from switchpoint.evals.suite import Case, Suite, hashes

POLICY_SUFFIXES = (".yaml", ".yml", ".json")
TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    model: str
    policy: str | None = None
    """The config file whose routing policy this candidate is."""


class Target(msgspec.Struct, kw_only=True):
    client: httpx.AsyncClient
    cost_of: CostOf


def parse_candidates(spec: str, suite: Suite) -> list[Candidate]:
    out = []
    for name in (s.strip() for s in spec.split(",")):
        if not name:
            continue
        if name.endswith(POLICY_SUFFIXES):
            out.append(Candidate(name=name, model=suite.model, policy=name))
        else:
            out.append(Candidate(name=name, model=name))
    if not out:
        raise ValueError("no candidates given")
    if len({c.name for c in out}) != len(out):
        raise ValueError("a candidate is named twice")
    return out


def _headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def _prices(config: Config | None) -> CostOf:
    return price_lookup({name: d.price for name, d in (config.deployments if config else {}).items()})


@contextlib.asynccontextmanager
async def in_process(config: Config, api_key: str | None = None) -> AsyncIterator[Target]:
    """A gateway built from ``config`` in this process, spoken to over ASGI (streamed), its
    ledger off; with the config's master key unless another key is given."""
    from switchpoint.api.app import create_app

    # the eval's own requests stay out of the ledger (usage, spend and replays read it as traffic)
    app = create_app(
        msgspec.structs.replace(config, storage=msgspec.structs.replace(config.storage, enabled=False))
    )
    key = api_key or (config.master_key.reveal() if config.master_key is not None else None)
    async with app.router.lifespan_context(app):
        transport = StreamingASGITransport(app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=_headers(key), timeout=TIMEOUT
        ) as client:
            yield Target(client=client, cost_of=_prices(config))


@contextlib.asynccontextmanager
async def over_http(
    url: str, api_key: str | None = None, config: Config | None = None
) -> AsyncIterator[Target]:
    """A running gateway; costs need its config (for the deployments' prices)."""
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), headers=_headers(api_key), timeout=TIMEOUT
    ) as client:
        yield Target(client=client, cost_of=_prices(config))


def _judge(target: Target, alias: str) -> checks_mod.Judge:
    async def judge(rubric: str, case: Case, out: Outcome) -> bool | None:
        body = {
            "model": alias,
            "messages": checks_mod.judge_prompt(rubric, case, out),
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": checks_mod.VERDICT_SCHEMA, "strict": True},
            },
        }
        try:
            resp = await target.client.post("/v1/chat/completions", json=body)
            if resp.status_code != 200:
                return None
            return checks_mod.verdict_of(resp.json()["choices"][0]["message"]["content"] or "")
        except (httpx.HTTPError, ValueError, KeyError, IndexError):
            return None

    return judge


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


async def run(
    suite: Suite,
    candidates: list[Candidate],
    targets: dict[str, Target],
    state_path: Path,
    *,
    judge_target: Target | None = None,
    concurrency: int | None = None,
    progress: bool = False,
    on_result: Callable[[state.Result], None] | None = None,
) -> list[state.Result]:
    """Every result of the suite for these candidates: those already in the state file, and
    the ones run now. ``targets`` maps a candidate's name to its gateway."""
    suite_hash = hashes(suite).suite
    done = state.read(state_path, suite_hash)
    jobs = [
        (cand, case, rep)
        for rep in range(suite.repetitions)
        for case in suite.cases
        for cand in candidates
        if state.key(suite_hash, cand.name, case.id, rep) not in done
    ]
    judge = _judge(judge_target, suite.judge) if judge_target is not None and suite.judge else None
    limit = asyncio.Semaphore(concurrency or suite.concurrency)
    appender = state.Appender(state_path)

    async def one(cand: Candidate, case: Case, rep: int) -> state.Result:
        target = targets[cand.name]
        async with limit:
            model = cand.model if cand.policy is None else (case.model or cand.model)
            out = await run_case(
                target.client,
                case,
                model,
                defaults=suite.params,
                max_turns=suite.max_turns,
                cost_of=target.cost_of,
            )
            results = await checks_mod.run_checks(case, out, suite, judge)
        result = state.Result(
            suite_hash=suite_hash,
            candidate=cand.name,
            case=case.id,
            rep=rep,
            session=f"{case.session or case.id}#{rep}",
            outcome=out,
            checks=results,
        )
        appender.write(result)
        if on_result is not None:
            on_result(result)
        return result

    try:
        with _progress(progress) as bar:
            task = bar.add_task(suite.name, total=len(jobs))
            pending = [asyncio.ensure_future(one(*job)) for job in jobs]
            try:
                for fut in asyncio.as_completed(pending):
                    r = await fut
                    done[r.key] = r
                    bar.advance(task)
            finally:
                for p in pending:
                    p.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
    finally:
        appender.close()
    names = {c.name for c in candidates}
    return [r for r in done.values() if r.candidate in names]


def state_path_for(suite: Suite, directory: Path) -> Path:
    return directory / f"{suite.name}-{hashes(suite).suite[:12]}.jsonl"


def targets_needed(candidates: list[Candidate]) -> dict[str | None, list[Candidate]]:
    """Candidates by the gateway they need: None is the gateway under test, else a policy file."""
    out: dict[str | None, list[Candidate]] = {}
    for c in candidates:
        out.setdefault(c.policy, []).append(c)
    return out
