"""Configuration: one YAML file, checked up front, resolved into frozen objects.

Parsing is closed (unknown keys are errors, reported with their path). Secrets are
references (``env:NAME``) resolved at load time; a :class:`Secret` never prints its value.
Every problem found is collected, so ``check-config`` can print them all at once.

The package is split by section: ``base`` (secrets, struct bases), ``resilience``,
``routing``, ``model`` (the file's shape and the resolved values) and ``loader``.
"""

from __future__ import annotations

from switchpoint.config.base import ALL_CAPABILITIES, Capability, Family, Secret, error_path
from switchpoint.config.guarantees import GuaranteesSpec, JsonGuaranteeSpec, OutputBudgetSpec
from switchpoint.config.loader import load, parse
from switchpoint.config.model import (
    Config,
    ConnectionLimits,
    Deployment,
    DeploymentSpec,
    FileSpec,
    Price,
    PriceSpec,
    Provider,
    ProviderSpec,
    ServerSpec,
)
from switchpoint.config.resilience import (
    DEFAULT_ACTIONS,
    BreakerSettings,
    BreakerSpec,
    ErrorAction,
    ExecutionOptions,
    Hedging,
    Resilience,
    ResilienceSpec,
    RetryPolicy,
    RetrySettings,
    TimeoutLimits,
    Timeouts,
    check_breaker,
    check_execution,
    check_hedging,
    check_retry,
    check_timeouts,
)
from switchpoint.config.routing import (
    AffinitySpec,
    CatalogSpec,
    ClassifierSpec,
    ContextSpec,
    Effort,
    FeatureRuleSpec,
    MatchSpec,
    ParamsSpec,
    PriorityMode,
    RangeSpec,
    RoutingSpec,
    RuleSpec,
    SemanticSpec,
    Strategy,
)
from switchpoint.config.storage import Storage, StorageSpec

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_ACTIONS",
    "AffinitySpec",
    "BreakerSettings",
    "BreakerSpec",
    "Capability",
    "CatalogSpec",
    "ClassifierSpec",
    "Config",
    "ConnectionLimits",
    "ContextSpec",
    "Deployment",
    "DeploymentSpec",
    "Effort",
    "ErrorAction",
    "ExecutionOptions",
    "Family",
    "FeatureRuleSpec",
    "FileSpec",
    "GuaranteesSpec",
    "Hedging",
    "JsonGuaranteeSpec",
    "MatchSpec",
    "OutputBudgetSpec",
    "ParamsSpec",
    "Price",
    "PriceSpec",
    "PriorityMode",
    "Provider",
    "ProviderSpec",
    "RangeSpec",
    "Resilience",
    "ResilienceSpec",
    "RetryPolicy",
    "RetrySettings",
    "RoutingSpec",
    "RuleSpec",
    "Secret",
    "SemanticSpec",
    "ServerSpec",
    "Storage",
    "StorageSpec",
    "Strategy",
    "TimeoutLimits",
    "Timeouts",
    "check_breaker",
    "check_execution",
    "check_hedging",
    "check_retry",
    "check_timeouts",
    "error_path",
    "load",
    "parse",
]
