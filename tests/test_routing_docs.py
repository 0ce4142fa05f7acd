"""docs/routing.md documents every routing key, strategy and header the code knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchpoint import config
from switchpoint.routing import features
from switchpoint.routing.strategies import STRATEGIES

DOC = (Path(__file__).resolve().parents[1] / "docs" / "routing.md").read_text()


def _section(title: str) -> str:
    """The text under a markdown heading, up to the next heading of the same or higher level."""
    m = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^#{{1,{3}}} |\Z)", DOC, re.M | re.S)
    assert m, f"no section {title!r} in docs/routing.md"
    return m.group(2)


def _table_keys(text: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))


@pytest.mark.parametrize(
    ("title", "spec"),
    [
        ("`routing`", config.RoutingSpec),
        ("A rule", config.RuleSpec),
        ("`match`", config.MatchSpec),
        ("`params` (presets)", config.ParamsSpec),
        ("`context`", config.ContextSpec),
        ("`affinity`", config.AffinitySpec),
        ("`catalog`", config.CatalogSpec),
    ],
)
def test_every_key_is_documented(title: str, spec: type) -> None:
    documented = _table_keys(_section(title))
    fields = set(spec.__struct_fields__)  # type: ignore[attr-defined]
    assert documented == fields, f"{title}: missing {fields - documented}, stale {documented - fields}"


def test_classifier_keys_are_documented() -> None:
    text = _section("`classifier`")
    assert set(config.ClassifierSpec.__struct_fields__) <= _table_keys(text)
    assert set(config.SemanticSpec.__struct_fields__) <= _table_keys(text)


def test_every_strategy_and_header_is_documented() -> None:
    assert _table_keys(_section("Strategies")) == set(STRATEGIES)
    for header in (
        features.TASK_HEADER,
        features.LATENCY_HEADER,
        features.PRIORITY_HEADER,
        features.BUDGET_HEADER,
        features.SESSION_HEADER,
        features.TAGS_HEADER,
    ):
        assert f"`{header}`" in DOC
    for key in features.ROUTING_META_KEYS:
        assert f"`metadata.{key}`" in DOC


def test_deployment_routing_fields_are_documented() -> None:
    documented = _table_keys(_section("Deployment fields routing reads"))
    assert {"usable_fraction", "tags", "catalog_model", "price"} <= documented
    assert documented <= set(config.DeploymentSpec.__struct_fields__)
