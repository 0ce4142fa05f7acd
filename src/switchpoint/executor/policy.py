"""Which deployment to try next, and when: the per-request attempt plan.

A :class:`Plan` walks the decision's candidates in order. After a failed attempt the action
configured for the error's kind decides what comes next:

- ``retry_same``: the same deployment again, after a backoff;
- ``failover``: the next candidate at once; when every candidate has been tried, the list
  starts over (each retry after a backoff) while the deployments still have attempts left;
- ``fallback_larger_context``: only candidates with a larger context window from now on;
- ``return``: the error goes back to the client.

A non-retryable error is never retried on the deployment that gave it. Every step stays
within the per-deployment ``attempts``, the request's ``max_total_attempts`` and its deadline.
A deployment whose breaker is open, or that asked for a pause (``Retry-After``), is skipped;
a pause short enough (``retry_after_max_s``) and inside the deadline is waited for when no
other candidate is left. Backoff is exponential with full jitter: a uniform draw in
``[0, min(backoff_max_s, backoff_base_s * 2**n)]`` for the request's n-th retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence

from switchpoint.config import Deployment, ErrorAction, ExecutionOptions, RetryPolicy, RetrySettings
from switchpoint.errors import AllCandidatesFailed, ProviderError, SwitchpointError
from switchpoint.health import HealthRegistry


def full_jitter(base_s: float, cap_s: float, n: int, rng: random.Random) -> float:
    """Backoff before the n-th retry (n from 0): uniform in [0, min(cap, base * 2**n)]."""
    return rng.uniform(0.0, min(cap_s, base_s * (2.0 ** min(n, 32))))


class ResilienceStats:
    """Process-wide counters (exposed at ``/metrics``)."""

    __slots__ = ("attempts", "failovers", "hedge_wins", "hedges", "retries", "timeouts")

    def __init__(self) -> None:
        self.attempts = 0
        self.retries = 0
        self.failovers = 0
        self.hedges = 0
        self.hedge_wins = 0
        self.timeouts = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def prometheus(self) -> list[str]:
        lines: list[str] = []
        for name, help_ in _COUNTERS:
            lines += [
                f"# HELP switchpoint_{name}_total {help_}",
                f"# TYPE switchpoint_{name}_total counter",
                f"switchpoint_{name}_total {getattr(self, name)}",
            ]
        return lines


_COUNTERS = (
    ("attempts", "Upstream attempts made."),
    ("retries", "Attempts on a deployment already tried for the same request."),
    ("failovers", "Attempts that moved to another deployment after a failure."),
    ("hedges", "Hedged attempts started."),
    ("hedge_wins", "Hedged attempts that won the race."),
    ("timeouts", "Attempts that timed out (connect, first token, stall or total)."),
)


def plan_deadline(first: RetrySettings, rule: RetryPolicy | None, deadline_s: float | None) -> float | None:
    """Seconds a request's attempts have in all (``None``: no deadline): the first candidate's
    ``deadline_s``, under the rule's (``0`` turns it off), capped by the client's."""
    deadline = first.deadline_s
    if rule is not None and rule.deadline_s is not None:
        deadline = rule.deadline_s or None
    if deadline_s is not None:
        deadline = deadline_s if deadline is None else min(deadline, deadline_s)
    return deadline


class Step:
    """One planned attempt: the candidate's index and deployment, and how long to wait first."""

    __slots__ = ("delay_s", "deployment", "index")

    def __init__(self, index: int, deployment: Deployment, delay_s: float) -> None:
        self.index = index
        self.deployment = deployment
        self.delay_s = delay_s


class Plan:
    __slots__ = (
        "_actions",
        "_cur",
        "_excluded",
        "_health",
        "_min_context",
        "_rng",
        "_rule",
        "_same",
        "_stats",
        "_stopped",
        "_tries",
        "candidates",
        "deadline",
        "errors",
        "max_total",
        "timeouts",
        "total",
    )

    def __init__(
        self,
        candidates: Sequence[Deployment],
        *,
        health: HealthRegistry,
        actions: Mapping[str, ErrorAction],
        options: ExecutionOptions | None,
        stats: ResilienceStats,
        rng: random.Random,
        deadline_s: float | None = None,
    ) -> None:
        self.candidates = candidates
        self._health = health
        self._actions = actions
        rule = self._rule = options.retry if options is not None else None
        #: The routing rule's timeouts (over each deployment's own).
        self.timeouts = options.timeouts if options is not None else None
        self._stats = stats
        self._rng = rng
        first = candidates[0].retry if candidates else RetrySettings()
        self.max_total = first.max_total_attempts
        if rule is not None and rule.max_total_attempts:
            self.max_total = rule.max_total_attempts
        deadline = plan_deadline(first, rule, deadline_s)
        self.deadline = None if deadline is None else time.monotonic() + deadline
        self._tries = [0] * len(candidates)
        self._excluded = [False] * len(candidates)
        self._cur = -1
        self._same = False
        self._min_context = 0
        self._stopped = False
        self.total = 0
        self.errors: list[SwitchpointError] = []

    def first_tried(self) -> Step:
        """The first candidate's attempt, made before the plan was (see ``Executor._run``),
        counted here as :meth:`started` would have: the step, to report its outcome."""
        self._tries[0] = 1
        self.total = 1
        return Step(0, self.candidates[0], 0.0)

    # --- settings, the rule's over the deployment's ------------------------------------------

    def _setting(self, dep: Deployment, name: str) -> float:
        if self._rule is not None:
            value = getattr(self._rule, name)
            if value is not None:
                return float(value)
        return float(getattr(dep.retry, name))

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    # --- choosing ------------------------------------------------------------------------------

    def _eligible(self, i: int, dep: Deployment) -> bool:
        return (
            not self._excluded[i]
            and self._tries[i] < self._setting(dep, "attempts")
            and dep.context_window > self._min_context
        )

    def next(self, *, busy: frozenset[int] = frozenset(), hedge: bool = False) -> Step | None:
        """The next attempt, or None when the plan is exhausted.

        After ``retry_same``, the same deployment again (after its backoff). Otherwise, in
        order from the candidate after the last one tried: an untried candidate the breaker
        admits now; else an untried one whose breaker is open or that is paused, as a last
        resort; else a retry of one already tried, after its backoff (and after its
        ``Retry-After``, when that is short enough to wait for). ``hedge``: only an untried
        candidate that can start now and is not one of ``busy``.
        """
        if self._stopped or self.total >= self.max_total:
            return None
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        if not self.total and not hedge and self.candidates:  # the first attempt: the first candidate?
            dep = self.candidates[0]
            if self._health.admit(dep.name, dep.breaker):
                return Step(0, dep, 0.0)
        if self._same and not hedge:
            step = self._retry(self._cur, remaining)
            if step is not None:
                return step
        n = len(self.candidates)
        health = self._health
        last: Step | None = None
        retry: Step | None = None
        for j in range(self._cur + 1, self._cur + 1 + n):
            i = j % n
            dep = self.candidates[i]
            if i in busy or not self._eligible(i, dep):
                continue
            if not self._tries[i]:
                if health.admit(dep.name, dep.breaker):  # closed, or half open with a probe free
                    return Step(i, dep, 0.0)
                if not hedge and last is None:
                    last = Step(i, dep, 0.0)
            elif not hedge and retry is None:
                retry = self._retry(i, remaining)
        return last or retry

    def _retry(self, i: int, remaining: float | None) -> Step | None:
        dep = self.candidates[i]
        if not self._eligible(i, dep):
            return None
        pause = self._health.throttled_for(dep.name)
        if pause > self._setting(dep, "retry_after_max_s"):
            return None
        wait = max(self._backoff(dep), pause)
        if remaining is not None and wait >= remaining:
            return None
        return Step(i, dep, wait)

    def _backoff(self, dep: Deployment) -> float:
        retries = self.total - sum(1 for t in self._tries if t)
        base = self._setting(dep, "backoff_base_s")
        return full_jitter(base, self._setting(dep, "backoff_max_s"), retries, self._rng)

    # --- outcomes ------------------------------------------------------------------------------

    def started(self, step: Step, *, hedge: bool = False) -> None:
        i = step.index
        if self._tries[i]:
            self._stats.retries += 1
        elif self.total and not hedge:
            self._stats.failovers += 1
        self._stats.attempts += 1
        self._tries[i] += 1
        self.total += 1

    def failed(self, step: Step, err: ProviderError) -> None:
        self.errors.append(err)
        if err.kind == "timeout":
            self._stats.timeouts += 1
        action = self._actions.get(err.kind) or ("failover" if err.retryable else "return")
        dep = step.deployment
        self._cur = step.index
        self._same = action == "retry_same" and err.retryable
        if action == "return":
            self._stopped = True
        elif action == "fallback_larger_context":
            self._min_context = max(self._min_context, dep.context_window)
        too_long = err.retry_after is not None and err.retry_after > self._setting(dep, "retry_after_max_s")
        if not err.retryable or too_long:
            self._excluded[step.index] = True  # never retried here: not retryable, or asks too long a pause

    def failure(self, model: str) -> SwitchpointError:
        """The error for the client when the plan is exhausted."""
        if self.errors:
            return self.errors[0] if len(self.errors) == 1 else AllCandidatesFailed(self.errors)
        return ProviderError("timeout", f"The request's deadline passed before '{model}' could be tried")
