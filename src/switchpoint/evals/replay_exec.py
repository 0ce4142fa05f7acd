"""``switchpoint replay --execute``: logged requests with stored bodies sent for real through the
candidate policy, and compared with what the ledger logged for them, as an eval; and
``switchpoint eval shadow``: live requests compared with their shadow copies in the ledger.

The logged side (candidate ``logged``) is the ledger's own figures for each request: time to the
first token, latency, cost, whether it failed. The replayed side (candidate ``replayed``) is the
same Chat Completions body, asked for the same model, through a gateway built from the candidate
config in process. Both go through the eval's metrics, and through a suite's gate when one is
given (``--gate SUITE.yaml``; its baseline is ``logged``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec

from switchpoint.config import Config
from switchpoint.evals import gate as gate_mod
from switchpoint.evals import metrics, report, runner
from switchpoint.evals.client import Outcome
from switchpoint.evals.state import Result
from switchpoint.evals.suite import Case, Gate, Suite, hashes
from switchpoint.store.evals import LoggedRequest

LOGGED, REPLAYED = "logged", "replayed"
LIVE, SHADOW = "live", "shadow"
#: How a shadow copy's request id starts (``api.shadow.PREFIX``).
SHADOW_PREFIX = "shadow-"
#: Chat Completions fields a replayed case keeps besides messages, tools and response_format.
_PARAMS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "tool_choice")


def case_of(row: LoggedRequest) -> Case | None:
    """The logged Chat Completions request as a case (None: no body, or another dialect)."""
    if row.request_body is None or row.endpoint != "chat.completions":
        return None
    try:
        doc = msgspec.json.decode(row.request_body)
    except msgspec.DecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
        return None
    params = {k: doc[k] for k in _PARAMS if k in doc}
    return Case(
        id=row.request_id,
        model=str(doc.get("model") or row.alias),
        messages=doc["messages"],
        tools=doc.get("tools"),
        response_format=doc.get("response_format"),
        params=params or None,
    )


def logged_result(
    row: LoggedRequest, suite_hash: str, candidate: str = LOGGED, case: str | None = None
) -> Result:
    out = Outcome(
        ttft_s=row.ttft_ms / 1000 if row.ttft_ms is not None else None,
        latency_s=(row.latency_ms or 0.0) / 1000,
        cost_usd=row.cost_usd,
        deployment=row.deployment,
        status=row.status,
        error=None if row.status == 200 else f"{row.status}",
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
    )
    case = case or row.request_id
    return Result(
        suite_hash=suite_hash, candidate=candidate, case=case, rep=0, session=case, outcome=out, checks=[]
    )


async def execute(
    rows: list[LoggedRequest],
    candidate: Config,
    *,
    state_dir: Path,
    gate: Gate | None = None,
    concurrency: int = 4,
    progress: bool = False,
    name: str = "replay",
    registration: str = "unregistered",
) -> tuple[report.Report, int]:
    """The report of logged against replayed, and how many rows had no body to send."""
    pairs = [(row, case) for row in rows if (case := case_of(row)) is not None]
    suite = Suite(name=name, cases=[c for _, c in pairs], concurrency=concurrency)
    suite_hash = hashes(suite).suite
    replayed: list[Result] = []
    if pairs:
        cand = runner.Candidate(name=REPLAYED, model="auto", policy=REPLAYED)
        async with contextlib.AsyncExitStack() as stack:
            target = await stack.enter_async_context(runner.in_process(candidate))
            path = runner.state_path_for(suite, state_dir)
            replayed = await runner.run(suite, [cand], {REPLAYED: target}, path, progress=progress)
    logged = [logged_result(row, suite_hash) for row, _ in pairs]
    per = metrics.compute([*logged, *replayed], [LOGGED, REPLAYED])
    verdicts = None
    if gate is not None:
        verdicts = gate_mod.evaluate(msgspec.structs.replace(gate, baseline=LOGGED), per)
    rep = report.Report(
        suite=name,
        suite_hash=suite_hash,
        registration=registration,
        repetitions=1,
        candidates=per,
        gate=verdicts,
        passed=None if verdicts is None else all(v.passed for v in verdicts),
    )
    return rep, len(rows) - len(pairs)


def shadow_report(
    rows: list[LoggedRequest], *, gate: Gate | None = None, registration: str = "unregistered"
) -> tuple[report.Report, int]:
    """Live requests against their shadow copies (``shadow-<id>`` rows), as an eval: candidate
    ``live`` is each copied request as the ledger logged it, ``shadow`` its copy. Returns the
    report and the number of pairs."""
    by_id = {r.request_id: r for r in rows}
    pairs = [
        (by_id[r.request_id.removeprefix(SHADOW_PREFIX)], r)
        for r in rows
        if r.request_id.startswith(SHADOW_PREFIX) and r.request_id.removeprefix(SHADOW_PREFIX) in by_id
    ]
    suite_hash = "shadow"
    results = []
    for live, copy in pairs:
        results.append(logged_result(live, suite_hash, LIVE))
        results.append(logged_result(copy, suite_hash, SHADOW, case=live.request_id))
    per = metrics.compute(results, [LIVE, SHADOW])
    verdicts = None
    if gate is not None:
        verdicts = gate_mod.evaluate(msgspec.structs.replace(gate, baseline=LIVE), per)
    rep = report.Report(
        suite="shadow",
        suite_hash=suite_hash,
        registration=registration,
        repetitions=1,
        candidates=per,
        gate=verdicts,
        passed=None if verdicts is None else all(v.passed for v in verdicts),
    )
    return rep, len(pairs)
