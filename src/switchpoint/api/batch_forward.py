"""Batches forwarded to the provider's own Batch API (deployments with ``batch_api: true``).

An OpenAI ``/v1/chat/completions`` batch whose lines all name one model, served first by such a
deployment, is not run line by line: the runner uploads the lines (each ``model`` set to the
deployment's upstream model) to the provider, creates the batch there, and reads it every
``batches.poll_s`` (its counts are the batch's progress). A cancel is passed on. When the
provider's batch has ended its output and error files are read back into the batch's lines,
and each line is booked in the ledger as a batch request of that deployment (its usage, the
batch flag, so the discounted price). The provider's batch id is kept in the batch's row: a
restart goes on reading the same batch, never creates a second one.

Limits and budgets of the owner's key are not reserved for a forwarded batch (the provider
runs it); the key's allowed models are checked when the batch is created.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import msgspec

from switchpoint.api.chat import error_reply
from switchpoint.api.openai import OpenAIDialect
from switchpoint.config import Config, Deployment
from switchpoint.errors import BadRequest, SwitchpointError
from switchpoint.executor.upstream_batches import ENDED, UpstreamBatch, UpstreamBatches, UpstreamLine
from switchpoint.governance.access import check_alias
from switchpoint.governance.principal import Principal
from switchpoint.records import Attempt, RequestRecord
from switchpoint.store import batches as store

if TYPE_CHECKING:
    from switchpoint.api.batch_runner import BatchRunner

log = logging.getLogger("switchpoint")
_OPENAI = OpenAIDialect()


def forward_target(
    config: Config, lines: list[tuple[str, str]], endpoint: str, principal: Principal
) -> str | None:
    """The deployment a new batch is forwarded to (None: the gateway runs it)."""
    if endpoint != "/v1/chat/completions":
        return None
    models = set()
    for _, body in lines:
        model = msgspec.json.decode(body).get("model")
        models.add(model if isinstance(model, str) else None)
    if len(models) != 1:
        return None
    model = models.pop()
    if model is None:
        return None
    candidates = config.candidates(model)
    if not candidates or not candidates[0].batch_api or candidates[0].family != "openai":
        return None
    check_alias(principal, model)
    return candidates[0].name


class Forwarder:
    def __init__(self, runner: BatchRunner) -> None:
        self.runner = runner
        self.files = runner.files
        self.upstream = UpstreamBatches(runner.gw.transport)
        #: Forwarded batches whose cancel this process has passed on.
        self._cancel_sent: set[str] = set()

    async def run(self, batch: store.BatchRow) -> bool:
        """One look at the batch (started at the provider first, when it is not yet); True once
        every line has its result, False while the provider is still at it."""
        engine = self.files.engine()
        dep = self.runner.gw.config.deployments.get(batch.deployment or "")
        if dep is None:
            gone = BadRequest(
                f"The deployment '{batch.deployment}' this batch was sent to is no longer configured"
            )
            await self._fail_all(batch, gone)
            return True
        upstream_id = batch.upstream_id
        if upstream_id is None:
            if batch.status == "cancelling":
                return True
            try:
                started = await self.upstream.start(
                    dep, await self._input(batch, dep), f"{batch.id}.jsonl", batch.endpoint
                )
            except SwitchpointError as err:
                if err.retryable:
                    raise  # the runner tries again after its pause
                await self._fail_all(batch, err)
                return True
            upstream_id = started.id
            await self.files.run(store.set_upstream, engine, batch.id, upstream_id, time.time())
        if batch.status == "cancelling" and batch.id not in self._cancel_sent:
            await self.upstream.cancel(dep, upstream_id)
            self._cancel_sent.add(batch.id)
        up = await self.upstream.get(dep, upstream_id)
        await self.files.run(store.set_counts, engine, batch.id, up.completed, up.failed)
        if up.status not in ENDED:
            return False
        await self._collect(batch, dep, up)
        self._cancel_sent.discard(batch.id)
        return True

    async def _input(self, batch: store.BatchRow, dep: Deployment) -> bytes:
        """The pending lines as the provider's input file (its own model id in each)."""
        out = bytearray()
        for line in await self._pending(batch):
            body = msgspec.json.decode(line.body)
            body["model"] = dep.model
            doc = {"custom_id": line.custom_id, "method": "POST", "url": batch.endpoint, "body": body}
            out += msgspec.json.encode(doc) + b"\n"
        return bytes(out)

    async def _save(self, batch: store.BatchRow, results: list[store.LineResult]) -> None:
        for start in range(0, len(results), 500):
            await self.files.run(
                store.save_results,
                self.files.engine(),
                batch.id,
                results[start : start + 500],
                self.runner.id,
                time.time() + store.LEASE_S,
            )

    async def _pending(self, batch: store.BatchRow) -> list[store.Line]:
        engine = self.files.engine()
        lines: list[store.Line] = []
        after = -1
        while page := await self.files.run(store.pending_lines, engine, batch.id, after, 1000):
            lines += page
            after = page[-1].line
        return lines

    async def _collect(self, batch: store.BatchRow, dep: Deployment, up: UpstreamBatch) -> None:
        """The provider's answers into the lines, each booked; lines it did not return are
        cancelled (the provider's batch was cancelled or expired)."""
        engine = self.files.engine()
        pending = {line.custom_id: line for line in await self._pending(batch)}
        caller = await self.runner.principal(batch.owner)
        principal = caller if isinstance(caller, Principal) else None
        results: list[store.LineResult] = []
        for answer in await self.upstream.results(dep, up):
            line = pending.pop(answer.custom_id, None)
            if line is None:
                continue
            results.append(self._book(batch, dep, line, answer, principal))
        await self._save(batch, results)
        await self.files.run(store.cancel_pending, engine, batch.id)

    def _book(
        self,
        batch: store.BatchRow,
        dep: Deployment,
        line: store.Line,
        answer: UpstreamLine,
        principal: Principal | None,
    ) -> store.LineResult:
        rid = f"{batch.id}-{line.line}"
        status = answer.status_code or 502
        ok = status < 400
        model = msgspec.json.decode(line.body).get("model") or dep.name
        attempt = Attempt(
            deployment=dep.name,
            provider=dep.provider.name,
            family=dep.family,
            status=status,
            error=None if ok else "upstream_batch",
            usage=answer.usage,
        )
        record = RequestRecord(
            request_id=rid,
            started_at=batch.created_at,
            dialect="openai",
            endpoint="chat.completions",
            model=str(model),
            deployment=dep.name,
            status=status,
            error=None if ok else "upstream_batch",
            usage=answer.usage,
            attempts=(attempt,),
            principal=principal.name if principal is not None else None,
            key_id=principal.key_id if principal is not None else None,
            team=principal.team_name if principal is not None else None,
            batch=True,
        )
        self.runner.gw.accounting.submit(record)
        return store.LineResult(
            line=line.line,
            custom_id=line.custom_id,
            status=store.SUCCEEDED if ok else store.ERRORED,
            status_code=status,
            request_id=rid,
            result=answer.body.decode(),
        )

    async def _fail_all(self, batch: store.BatchRow, err: SwitchpointError) -> None:
        """Every pending line answered with ``err`` (in OpenAI's error JSON)."""
        reply = error_reply(_OPENAI, err, {})
        results = [
            store.LineResult(
                line=line.line,
                custom_id=line.custom_id,
                status=store.ERRORED,
                status_code=reply.status,
                request_id=f"{batch.id}-{line.line}",
                result=reply.body.decode(),
            )
            for line in await self._pending(batch)
        ]
        await self._save(batch, results)
