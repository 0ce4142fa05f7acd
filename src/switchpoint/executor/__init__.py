"""Executes routed requests against upstreams: attempts, retries, failover, hedging, stream commit."""

from switchpoint.executor.core import Executor, RequestContext
from switchpoint.executor.h1 import H1Transport, transport_for
from switchpoint.executor.policy import ResilienceStats
from switchpoint.executor.stream import CommittedStream
from switchpoint.executor.timeouts import RequestLimits, limits_from_headers
from switchpoint.executor.transport import Transport
from switchpoint.providers.credentials import CREDENTIALS as CLOUD_CREDENTIALS

__all__ = [
    "CLOUD_CREDENTIALS",
    "CommittedStream",
    "Executor",
    "H1Transport",
    "RequestContext",
    "RequestLimits",
    "ResilienceStats",
    "Transport",
    "limits_from_headers",
    "transport_for",
]
