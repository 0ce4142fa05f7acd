"""Executes routed requests against upstreams: attempts, failover, stream commit."""

from switchpoint.executor.core import CommittedStream, Executor, RequestContext
from switchpoint.executor.transport import AiohttpTransport, Transport

__all__ = ["AiohttpTransport", "CommittedStream", "Executor", "RequestContext", "Transport"]
