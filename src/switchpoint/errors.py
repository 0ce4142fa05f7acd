"""One exception tree for the whole gateway.

Every error knows its HTTP status, its kind (a stable, dialect-neutral name), whether it is
worth retrying, and an optional ``retry_after`` in seconds. Errors are raised anywhere below
the API layer and rendered exactly once, in the client's dialect, by ``api/``.

Messages must never carry secrets or stack traces: they go to clients verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class SwitchpointError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal_error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.retryable = self.default_retryable if retryable is None else retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


# --- client errors: the request itself is wrong ------------------------------------------


class BadRequest(SwitchpointError):
    status = 400
    kind = "invalid_request"


class AuthenticationFailed(SwitchpointError):
    status = 401
    kind = "authentication"


class PaymentRequired(SwitchpointError):
    status = 402
    kind = "budget_exceeded"


class PermissionDenied(SwitchpointError):
    status = 403
    kind = "permission"


class NotFound(SwitchpointError):
    status = 404
    kind = "not_found"


class ModelNotFound(NotFound):
    kind = "model_not_found"


class PayloadTooLarge(SwitchpointError):
    status = 413
    kind = "request_too_large"


class Unprocessable(SwitchpointError):
    status = 422
    kind = "unprocessable"


class RateLimited(SwitchpointError):
    status = 429
    kind = "rate_limited"
    default_retryable = True


class OutputBudgetSpent(SwitchpointError):
    """A routing rule's output-token budget for the session or task is used up."""

    status = 429
    kind = "output_budget"


class BudgetExceeded(SwitchpointError):
    """A budget cannot hold the request's worst-case cost. 429 with ``Retry-After`` until the
    budget's period resets; 402 for a ``total`` budget (it never resets)."""

    status = 429
    kind = "budget_exceeded"

    def __init__(
        self, message: str, *, budget: str, resets_at: str | None, retry_after: float | None
    ) -> None:
        super().__init__(message, code="budget_exceeded", retry_after=retry_after)
        #: The budget's name (``key 'ci' daily``) and when it resets (ISO 8601 UTC; None: never).
        self.budget = budget
        self.resets_at = resets_at
        if resets_at is None:
            self.status = 402  # type: ignore[misc]  # instance-level override of the class default


# --- server side ---------------------------------------------------------------------------


class InternalError(SwitchpointError):
    status = 500
    kind = "internal_error"


class ShuttingDown(SwitchpointError):
    """The gateway stopped before the answer was complete (its drain deadline passed)."""

    status = 503
    kind = "shutting_down"
    default_retryable = True


class StateNotShared(SwitchpointError):
    """A limited key reached one of several workers that keep their governance state each
    to themselves (``serve --workers N`` without ``state.redis_url``): refused, never miscounted."""

    status = 503
    kind = "state_not_shared"


class StateUnavailable(SwitchpointError):
    """The shared governance state (Redis) did not answer: a limited caller is refused rather
    than let through uncounted."""

    status = 503
    kind = "state_unavailable"
    default_retryable = True


class RequestTimeout(SwitchpointError):
    """The client did not send its request's head or body in time (server connection limits)."""

    status = 408
    kind = "request_timeout"


class HeadTooLarge(SwitchpointError):
    """A request's head (request line and headers) is over ``server.max_head_bytes``."""

    status = 431
    kind = "request_header_fields_too_large"


class TooManyConnections(SwitchpointError):
    """The worker holds as many client connections as it allows (``server.max_connections``)."""

    status = 503
    kind = "too_many_connections"
    default_retryable = True


class ConfigError(SwitchpointError):
    """The configuration is invalid. Carries every problem, each with its path."""

    status = 500
    kind = "config_error"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


# --- upstream (provider) errors --------------------------------------------------------------

#: Kinds a provider error can have, with the HTTP status the gateway answers with when the
#: error reaches the client, and whether the same request may succeed if tried again.
PROVIDER_KINDS: dict[str, tuple[int, bool]] = {
    "bad_request": (400, False),
    "context_too_long": (400, False),
    "content_filtered": (400, False),
    "authentication": (401, False),
    "permission": (403, False),
    "not_found": (404, False),
    "request_too_large": (413, False),
    "unprocessable": (422, False),
    "rate_limited": (429, True),
    "server_error": (502, True),
    "overloaded": (503, True),
    "invalid_response": (502, True),
    "invalid_output": (502, True),
    "connection": (502, True),
    "timeout": (504, True),
}


#: Upstream statuses the client sees unchanged (a transparent gateway); others map by kind.
PASSTHROUGH_STATUSES = frozenset({400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504})


class ProviderError(SwitchpointError):
    """An upstream call failed. ``kind`` is one of :data:`PROVIDER_KINDS`.

    ``upstream_status`` is what the provider answered (``None`` when no HTTP answer came).
    The client sees that status when it is a standard one (e.g. 429 stays 429, 500 stays 500);
    otherwise (no answer, 529, odd codes) the status of the kind (502, 503, 504 …).
    """

    status = 502
    kind = "server_error"

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        deployment: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        status, retryable = PROVIDER_KINDS.get(kind, (502, True))
        if upstream_status in PASSTHROUGH_STATUSES:
            status = upstream_status
        super().__init__(message, retry_after=retry_after, retryable=retryable, param=param, code=code)
        self.kind = kind  # type: ignore[misc]  # instance-level override of the class default
        self.status = status  # type: ignore[misc]
        self.upstream_status = upstream_status
        self.deployment = deployment


class AllCandidatesFailed(SwitchpointError):
    """Every candidate deployment failed; keeps every attempt's error.

    Status and kind are those of the last error, so a client sees e.g. a 429 when every
    candidate was rate limited.
    """

    def __init__(self, errors: Sequence[SwitchpointError]) -> None:
        self.errors = list(errors)
        last = self.errors[-1]
        summary = "; ".join(f"{getattr(e, 'deployment', None) or '?'}: {e.message}" for e in self.errors)
        super().__init__(
            f"all {len(self.errors)} attempt(s) failed: {summary}",
            retry_after=last.retry_after,
            retryable=last.retryable,
            param=last.param,
            code=last.code,
        )
        self.status = last.status  # type: ignore[misc]
        self.kind = last.kind  # type: ignore[misc]
