"""Routing: pure decisions (no I/O). Canonical request + config → ordered candidates."""

from switchpoint.routing.router import Candidate, Decision, Router

__all__ = ["Candidate", "Decision", "Router"]
