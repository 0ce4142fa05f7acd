"""Routing: pure decisions (no I/O). Canonical request + config + live health → ordered,
explained candidates. See docs/routing.md."""

from switchpoint.routing.affinity import AffinityStore
from switchpoint.routing.explain import Candidate, Decision
from switchpoint.routing.router import HealthView, Router

__all__ = ["AffinityStore", "Candidate", "Decision", "HealthView", "Router"]
