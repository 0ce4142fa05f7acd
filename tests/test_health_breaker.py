"""The circuit breaker state machine, Retry-After pauses, TTFT p95, and the views of them."""

from __future__ import annotations

import pytest

from switchpoint.config import BreakerSettings
from switchpoint.health import TTFT_MIN_SAMPLES, TTFT_SAMPLES, HealthRegistry, Quantiles

POLICY = BreakerSettings(consecutive_failures=3, error_rate=0.5, min_requests=10, window_s=10, cooldown_s=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> HealthRegistry:
    h = HealthRegistry()
    h.clock = clock
    return h


def _fail(h: HealthRegistry, n: int = 1, kind: str = "server_error", name: str = "d") -> None:
    for _ in range(n):
        assert h.admit(name, POLICY)
        h.on_failure(name, kind)


def test_opens_after_consecutive_failures_and_refuses_until_cooldown(
    health: HealthRegistry, clock: Clock
) -> None:
    _fail(health, 2)
    assert health.snapshot("d").breaker == "closed"
    _fail(health, 1)
    snap = health.snapshot("d")
    assert snap.breaker == "open" and not snap.healthy
    assert not health.admit("d", POLICY)
    assert health.available_in("d") == pytest.approx(5)
    clock.now += 4.9
    assert not health.admit("d", POLICY)
    clock.now += 0.2
    assert health.snapshot("d").breaker == "half_open" and health.snapshot("d").healthy


def test_a_success_resets_the_run_of_failures(health: HealthRegistry) -> None:
    _fail(health, 2)
    health.admit("d", POLICY)
    health.on_success("d", 10.0)
    _fail(health, 2)
    assert health.snapshot("d").breaker == "closed"


def test_error_rate_over_the_window_opens_it(health: HealthRegistry, clock: Clock) -> None:
    for i in range(10):
        health.admit("d", POLICY)
        if i % 2:
            health.on_failure("d", "overloaded")
        else:
            health.on_success("d", 10.0)
        clock.now += 0.1
        if i < 9:
            assert health.snapshot("d").breaker == "closed", i
    assert health.snapshot("d").breaker == "open", "5 failures in 10 attempts: 50%"


def test_old_failures_leave_the_window(health: HealthRegistry, clock: Clock) -> None:
    for i in range(9):
        health.admit("d", POLICY)
        (health.on_failure("d", "timeout") if i % 2 else health.on_success("d", 1.0))
    clock.now += 11  # all of it now older than window_s
    for _ in range(9):
        health.admit("d", POLICY)
        health.on_success("d", 1.0)
    health.admit("d", POLICY)
    health.on_failure("d", "timeout")
    assert health.breakers()["d"]["window_attempts"] == 10
    assert health.snapshot("d").breaker == "closed"


def test_request_errors_do_not_count(health: HealthRegistry) -> None:
    for kind in ("bad_request", "context_too_long", "content_filtered", "bad_request", "unprocessable"):
        _fail(health, 1, kind)
    snap = health.snapshot("d")
    assert snap.breaker == "closed" and snap.failures == 5 and snap.requests == 5


def test_half_open_lets_one_probe_through_and_closes_on_success(health: HealthRegistry, clock: Clock) -> None:
    _fail(health, 3)
    clock.now += 5
    assert health.admit("d", POLICY), "the probe"
    assert not health.admit("d", POLICY), "one probe at a time"
    health.on_success("d", 12.0)
    assert health.snapshot("d").breaker == "closed"
    assert health.admit("d", POLICY)


def test_a_failed_probe_opens_it_again(health: HealthRegistry, clock: Clock) -> None:
    _fail(health, 3)
    clock.now += 5
    assert health.admit("d", POLICY)
    health.on_failure("d", "connection")
    assert health.snapshot("d").breaker == "open"
    assert health.available_in("d") == pytest.approx(5)
    assert health.breakers()["d"]["opens"] == 2


def test_a_cancelled_probe_frees_its_slot(health: HealthRegistry, clock: Clock) -> None:
    _fail(health, 3)
    clock.now += 5
    assert health.admit("d", POLICY)
    health.on_release("d")
    assert health.admit("d", POLICY)


def test_a_last_resort_attempt_while_open(health: HealthRegistry, clock: Clock) -> None:
    _fail(health, 3)
    clock.now += 1
    health.on_failure("d", "connection")  # tried anyway, failed: the cooldown starts over
    assert health.available_in("d") == pytest.approx(5)
    health.on_success("d", 3.0)  # tried anyway, fine: closed
    assert health.snapshot("d").breaker == "closed"


def test_disabled_breaker_never_opens(health: HealthRegistry) -> None:
    off = BreakerSettings(enabled=False, consecutive_failures=1)
    for _ in range(10):
        assert health.admit("d", off)
        health.on_failure("d", "server_error")
    assert health.snapshot("d").breaker == "closed"


def test_retry_after_pauses_the_deployment(health: HealthRegistry, clock: Clock) -> None:
    health.admit("d", POLICY)
    health.on_failure("d", "rate_limited", retry_after=2.0)
    snap = health.snapshot("d")
    assert snap.throttled and not snap.healthy and snap.breaker == "closed"
    assert not health.admit("d", POLICY)
    assert health.throttled_for("d") == pytest.approx(2)
    clock.now += 2.01
    assert health.throttled_for("d") == 0 and health.admit("d", POLICY)
    assert health.snapshot("d").healthy


def test_inflight_and_latency_averages(health: HealthRegistry) -> None:
    health.on_start("d")
    health.on_start("d")
    assert health.snapshot("d").inflight == 2
    health.on_end("d")
    health.on_end("d")
    health.on_end("d")
    assert health.snapshot("d").inflight == 0
    health.on_first_token("d", 100.0)
    health.on_first_token("d", 200.0)
    assert health.snapshot("d").ttft_ewma_ms == pytest.approx(120.0)


def test_ttft_p95_needs_enough_samples_and_follows_the_ring() -> None:
    q = Quantiles()
    for i in range(TTFT_MIN_SAMPLES - 1):
        q.add(float(i))
    assert q.p95() is None
    q.add(1000.0)
    assert q.p95() == 1000.0, "20 samples: the p95 is the largest"
    for _ in range(TTFT_SAMPLES):
        q.add(5.0)
    assert q.p95() == 5.0, "the ring forgot the old samples"


def test_streamed_and_non_streamed_samples_are_kept_apart(health: HealthRegistry) -> None:
    for _ in range(TTFT_MIN_SAMPLES):
        health.on_first_token("d", 10.0)
        health.on_first_token("d", 900.0, streamed=False)
    assert health.ttft_p95("d") == 10.0
    assert health.ttft_p95("d", streamed=False) == 900.0
    assert health.ttft_p95("unknown") is None


def test_admin_view_and_prometheus_lines(health: HealthRegistry, clock: Clock) -> None:
    _fail(health, 3, name='we"ird')
    health.admit("ok", POLICY)
    health.on_success("ok", 5.0)
    view = health.breakers()
    assert view['we"ird']["state"] == "open" and view['we"ird']["probe_in_s"] == 5.0
    assert view["ok"]["state"] == "closed" and view["ok"]["open_for_s"] is None
    text = "\n".join(health.prometheus())
    assert 'switchpoint_breaker_state{deployment="we\\"ird"} 1' in text
    assert 'switchpoint_breaker_state{deployment="ok"} 0' in text
    assert 'switchpoint_breaker_opens_total{deployment="we\\"ird"} 1' in text
    assert "# TYPE switchpoint_breaker_state gauge" in text
    clock.now += 5
    assert 'switchpoint_breaker_state{deployment="we\\"ird"} 2' in "\n".join(health.prometheus())


def test_unknown_deployment_is_healthy(health: HealthRegistry) -> None:
    assert health.snapshot("nope").healthy
    assert health.available_in("nope") == 0 and health.throttled_for("nope") == 0
    health.on_release("nope")
    assert health.snapshots() == {}
