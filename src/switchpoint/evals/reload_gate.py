"""The gate of ``POST /admin/reload`` with ``{"gate": "SUITE.yaml"}``: the suite runs against the
running config (the baseline) and the new one (the challenger), each a gateway of its own in
process; the new config is applied only if it passes.

The eval runs on a thread with an event loop of its own, so the serving loop keeps serving and
the eval's gateways install no signal handlers.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from switchpoint.config import Config
from switchpoint.evals import report, runner
from switchpoint.evals.evaluate import Gateway, evaluate
from switchpoint.evals.suite import SuiteError, load

RUNNING, CANDIDATE = "running", "candidate"


async def _gate(suite_path: str, new: Config, running: Config, state_dir: Path) -> report.Report:
    suite = load(suite_path)
    if suite.gate is None:
        raise SuiteError(f"{suite_path}: the suite has no gate")
    suite = msgspec.structs.replace(suite, gate=msgspec.structs.replace(suite.gate, baseline=RUNNING))
    configs = {RUNNING: running, CANDIDATE: new}
    candidates = [runner.Candidate(name=n, model=suite.model, policy=n) for n in configs]
    return await evaluate(
        suite, candidates, Gateway(config=running), load_policy=configs.__getitem__, state_dir=state_dir
    )


async def reload_gate(suite_path: str, new: Config, running: Config) -> tuple[bool, dict[str, Any]]:
    """(passed, the gate's summary). Raises :class:`SuiteError` for a suite that cannot run."""

    def run() -> report.Report:
        with tempfile.TemporaryDirectory(prefix="switchpoint-gate-") as tmp:
            return asyncio.run(_gate(suite_path, new, running, Path(tmp)))

    rep = await asyncio.to_thread(run)
    return rep.passed is True, report.summary(rep)
