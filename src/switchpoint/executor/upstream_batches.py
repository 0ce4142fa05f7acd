"""Calls to a provider's own Batch API (``batch_api: true`` deployments) over the gateway's
transport: upload the input, create, read, cancel, download (wire in
:mod:`switchpoint.providers.openai_batch`)."""

from __future__ import annotations

from switchpoint.config import Deployment
from switchpoint.executor.transport import Transport
from switchpoint.providers import openai_batch as wire
from switchpoint.providers.base import UpstreamRequest, UpstreamResponse
from switchpoint.providers.openai_batch import ENDED, UpstreamBatch, UpstreamLine

__all__ = ["ENDED", "UpstreamBatch", "UpstreamBatches", "UpstreamLine"]


class UpstreamBatches:
    def __init__(self, transport: Transport, *, timeout_s: float = 120.0) -> None:
        self.transport = transport
        self.timeout_s = timeout_s

    async def _send(self, request: UpstreamRequest, deployment: Deployment) -> UpstreamResponse:
        response = await self.transport.send(
            request, timeout_s=self.timeout_s, connect_timeout_s=deployment.timeouts.connect_s
        )
        return wire.checked(response, deployment)

    async def start(
        self, deployment: Deployment, content: bytes, filename: str, endpoint: str
    ) -> UpstreamBatch:
        """Upload ``content`` (the lines, for this deployment) and create the batch."""
        uploaded = await self._send(wire.upload(deployment, content, filename), deployment)
        created = await self._send(wire.create(deployment, wire.file_id(uploaded), endpoint), deployment)
        return wire.batch(created)

    async def get(self, deployment: Deployment, batch_id: str) -> UpstreamBatch:
        return wire.batch(await self._send(wire.retrieve(deployment, batch_id), deployment))

    async def cancel(self, deployment: Deployment, batch_id: str) -> UpstreamBatch:
        return wire.batch(await self._send(wire.cancel(deployment, batch_id), deployment))

    async def results(self, deployment: Deployment, batch: UpstreamBatch) -> list[UpstreamLine]:
        """The lines of an ended batch's output and error files."""
        out: list[UpstreamLine] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is not None:
                out += wire.lines((await self._send(wire.content(deployment, file_id), deployment)).body)
        return out
