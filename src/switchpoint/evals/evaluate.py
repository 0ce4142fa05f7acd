"""One eval from end to end: gateways opened, cases run (resumed), metrics, gate, report, stored."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import msgspec
from sqlalchemy import Engine

from switchpoint.config import Config
from switchpoint.evals import gate as gate_mod
from switchpoint.evals import metrics, registry, report, runner
from switchpoint.evals.suite import Suite, hashes
from switchpoint.store import evals as store_evals


class Gateway(msgspec.Struct, kw_only=True):
    """The gateway under test: a config run in process, or a URL (with the config for prices)."""

    config: Config | None = None
    url: str | None = None
    api_key: str | None = None


async def evaluate(
    suite: Suite,
    candidates: list[runner.Candidate],
    gateway: Gateway,
    *,
    load_policy: Callable[[str], Config],
    state_dir: Path,
    engine: Engine | None = None,
    concurrency: int | None = None,
    progress: bool = False,
) -> report.Report:
    h = hashes(suite)
    async with contextlib.AsyncExitStack() as stack:
        if gateway.url is not None:
            base = await stack.enter_async_context(
                runner.over_http(gateway.url, gateway.api_key, gateway.config)
            )
        elif gateway.config is not None:
            base = await stack.enter_async_context(runner.in_process(gateway.config, gateway.api_key))
        else:
            raise ValueError("a gateway needs a config or a URL")
        targets: dict[str, runner.Target] = {}
        for policy, cands in runner.targets_needed(candidates).items():
            if policy is None:
                target = base
            else:
                target = await stack.enter_async_context(
                    runner.in_process(load_policy(policy), gateway.api_key)
                )
            targets.update({c.name: target for c in cands})
        results = await runner.run(
            suite,
            candidates,
            targets,
            runner.state_path_for(suite, state_dir),
            judge_target=base,
            concurrency=concurrency,
            progress=progress,
        )
    per = metrics.compute(results, [c.name for c in candidates])
    verdicts = gate_mod.evaluate(suite.gate, per) if suite.gate is not None and len(candidates) > 1 else None
    rep = report.Report(
        suite=suite.name,
        suite_hash=h.suite,
        registration=registry.status(engine, suite.name, h) if engine is not None else registry.UNREGISTERED,
        repetitions=suite.repetitions,
        candidates=per,
        gate=verdicts,
        passed=None if verdicts is None else all(v.passed for v in verdicts),
    )
    if engine is not None:
        store_evals.save_run(
            engine,
            suite=suite.name,
            suite_hash=h.suite,
            registration=rep.registration,
            report=report.to_json(rep).decode(),
            html=report.to_html(rep),
        )
    return rep
