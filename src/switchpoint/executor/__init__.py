"""Executes routed requests against upstreams: attempts, retries, failover, hedging, stream commit."""

from switchpoint.executor.core import Executor, RequestContext
from switchpoint.executor.policy import ResilienceStats
from switchpoint.executor.stream import CommittedStream
from switchpoint.executor.timeouts import RequestLimits, limits_from_headers
from switchpoint.executor.transport import AiohttpTransport, Transport

__all__ = [
    "AiohttpTransport",
    "CommittedStream",
    "Executor",
    "RequestContext",
    "RequestLimits",
    "ResilienceStats",
    "Transport",
    "limits_from_headers",
]
