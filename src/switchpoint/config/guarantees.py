"""A routing rule's ``guarantees``: checked JSON output and output-token budgets (docs/routing.md)."""

from __future__ import annotations

from typing import Literal

from switchpoint.config.base import _Frozen


class JsonGuaranteeSpec(_Frozen, frozen=True):
    """Answers to requests that ask for JSON (``json_object``, a JSON schema, a forced tool) are
    parsed and validated before the client sees them; an invalid one is an ``invalid_output``
    attempt, retried or failed over like any other failure."""

    enabled: bool = True
    #: Streams: ``validate`` (forwarded as they come, checked at the end, the outcome recorded),
    #: ``buffer`` (read whole and checked before the first byte goes out, so an invalid one is
    #: retried as a non-streamed one is) or ``off``.
    stream: Literal["validate", "buffer", "off"] = "validate"


class OutputBudgetSpec(_Frozen, frozen=True):
    """Output tokens a request, a session (``x-switchpoint-session``) or a task
    (``x-switchpoint-task``) may use; a stream that crosses its budget is ended with the
    dialect's ``length`` finish. Session and task spending is kept per gateway process."""

    request: int | None = None
    session: int | None = None
    task: int | None = None


class GuaranteesSpec(_Frozen, frozen=True):
    json: JsonGuaranteeSpec | None = None
    output_budget: OutputBudgetSpec | None = None


def check_guarantees(spec: GuaranteesSpec, path: str, problems: list[str]) -> None:
    budget = spec.output_budget
    if budget is None:
        return
    for key in ("request", "session", "task"):
        value = getattr(budget, key)
        if value is not None and value < 1:
            problems.append(f"{path}.output_budget.{key}: must be positive")
    if budget == OutputBudgetSpec():
        problems.append(f"{path}.output_budget: give at least one of request, session and task")
