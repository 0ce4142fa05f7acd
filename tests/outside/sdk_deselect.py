"""A pytest plugin for the child run of an SDK's suite: drops the tests in ``sdk_suites.DESELECTED``.

Loaded with ``-p sdk_deselect`` (this folder on ``PYTHONPATH``); ``SDK_SUITE`` names the suite
and ``SDK_DESELECT_REPORT`` a JSON file where the count per entry is written, so the caller can
check that every entry still matches a test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sdk_suites import DESELECTED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = os.environ["SDK_SUITE"]
    entries = [d for d in DESELECTED if d.suite == suite]
    counts = {d.key: 0 for d in entries}
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        file = item.nodeid.split("::", 1)[0]
        match = next((d for d in entries if d.matches(file, item.name)), None)
        if match is None:
            kept.append(item)
        else:
            counts[match.key] += 1
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    report = {"selected": len(kept), "deselected": counts}
    Path(os.environ["SDK_DESELECT_REPORT"]).write_text(json.dumps(report, indent=1))
