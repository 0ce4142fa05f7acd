"""Fixtures of the outside suites, and their counts in the closing summary of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outside_harness import CROSSED, SDK_MODELS, SUMMARY, RunningGateway, gateway_in_thread


def _sdk_aliases() -> dict[str, str]:
    """SDK_MODELS, plus the models the installed anthropic SDK warns about as deprecated
    (its suite sends each of them once)."""
    from anthropic.resources.messages import DEPRECATED_MODELS

    return {**SDK_MODELS, **dict.fromkeys(DEPRECATED_MODELS, "sim-claude")}


@pytest.fixture(scope="session")
def outside_gateway(simulator_url: str) -> Iterator[RunningGateway]:
    """An open gateway in this process, the simulator behind it, the SDK suites' model names
    served by a deployment of the client's own wire family (passed through)."""
    with gateway_in_thread(simulator_url, _sdk_aliases()) as running:
        yield running


@pytest.fixture(scope="session")
def translating_gateway(simulator_url: str) -> Iterator[RunningGateway]:
    """The same names served by a deployment of the other wire family (translated both ways)."""
    crossed = {name: CROSSED[deployment] for name, deployment in _sdk_aliases().items()}
    with gateway_in_thread(simulator_url, crossed) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("outside suites")
        for line in SUMMARY:
            terminalreporter.write_line(line)
