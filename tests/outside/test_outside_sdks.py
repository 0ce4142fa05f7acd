"""The official SDKs' own API tests (from their PyPI source distributions) against the gateway.

Nobody here wrote these tests: each SDK's ``tests/api_resources`` files for the endpoints the
gateway serves run unchanged in a child pytest, with ``TEST_API_BASE_URL`` pointing at the
gateway and the simulated provider behind it. The objects the tests name without creating them
(the suites target a mock server that answers any id) are made first, under those ids, in the
gateway's own database (``sdk_seed``, a plugin of the child run, given the database's URL and the
owner the suite's API key is to the gateway). The tests left out are named in one list,
``sdk_suites.DESELECTED``, each with its reason: an endpoint the gateway does not serve, or the
part of a served one it does not implement.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from outside_harness import SUMMARY, RunningGateway, clean_env
from sdk_seed import PLAN
from sdk_suites import DESELECTED, HERE, SUITES, fetch, pytest_args


def _counts(junit: Path) -> dict[str, int]:
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    return totals


def _failures(junit: Path, limit: int = 60) -> str:
    """One line per failed test: its id and the first line of its failure message."""
    lines = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for problem in (*case.findall("failure"), *case.findall("error")):
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            first = message[0][:300] if message else ""
            lines.append(f"{case.get('classname')}::{case.get('name')}: {first}")
    more = f"\n... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


# passthrough: the upstream speaks the client's wire; translated: the other one (the Anthropic
# suite's models served on the OpenAI wire). The OpenAI suite is not run translated yet: its
# requests hold a single `developer` message, which has no Anthropic equivalent without a user
# turn (the gateway answers 400 "the request needs at least one user or assistant message").
ROUTES = {"passthrough": "outside_gateway", "translated": "translating_gateway"}
RUNS = (("anthropic", "passthrough"), ("anthropic", "translated"), ("openai", "passthrough"))


@pytest.mark.parametrize(("suite", "route"), RUNS, ids=[f"{s}-{r}" for s, r in RUNS])
def test_sdk_api_resources(suite: str, route: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    gateway: RunningGateway = request.getfixturevalue(ROUTES[route])
    root = fetch(SUITES[suite].package)
    junit = tmp_path / "junit.xml"
    report = tmp_path / "deselected.json"
    assert f'api_key = "{SUITES[suite].api_key}"' in (root / "tests" / "conftest.py").read_text()
    env = clean_env(
        TEST_API_BASE_URL=gateway.url + SUITES[suite].base_path,
        PYTHONPATH=str(HERE),
        SDK_SUITE=suite,
        SDK_DESELECT_REPORT=str(report),
        SDK_SEED_DATABASE_URL=gateway.database_url,
        SDK_SEED_OWNER=gateway.owner(SUITES[suite].key_headers()),
    )
    run = subprocess.run(
        pytest_args(suite, root, junit),
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = run.stdout + run.stderr
    assert junit.exists() and report.exists(), f"the {suite} suite did not run:\n{output[-4000:]}"
    counts = _counts(junit)
    matched = json.loads(report.read_text())["deselected"]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    SUMMARY.append(
        f"{suite} {root.name} tests/api_resources ({route}): {passed} passed, {counts['failures']} failed, "
        f"{counts['errors']} errors, {counts['skipped']} skipped, {sum(matched.values())} deselected "
        f"({len(matched)} entries)"
    )
    unmatched = [key for key, n in matched.items() if n == 0]
    assert not unmatched, f"DESELECTED entries that match no test any more (remove them): {unmatched}"
    assert run.returncode == 0, (
        f"{suite} SDK suite against the gateway ({route}):\n{_failures(junit)}\n{output.splitlines()[-1]}"
    )
    assert passed > 0


def test_every_deselected_entry_names_a_selected_file() -> None:
    for entry in DESELECTED:
        assert entry.file in SUITES[entry.suite].files, entry
        assert entry.reason, entry


def test_every_seeded_test_is_in_a_selected_file() -> None:
    for suite, file, pattern, _ in PLAN:
        assert file in SUITES[suite].files, (suite, file, pattern)
