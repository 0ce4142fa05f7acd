"""The router: turns the model a client named into an ordered list of candidates.

Pure: it reads the frozen config and the request, nothing else. Each candidate carries the
reason it was chosen so that every decision can be explained.
"""

from __future__ import annotations

import msgspec

from switchpoint.canonical import ChatRequest, ImagePart, Message
from switchpoint.config import Config, Deployment, ExecutionOptions
from switchpoint.errors import BadRequest, ModelNotFound


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    deployment: Deployment
    reason: str


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    candidates: tuple[Candidate, ...]
    #: Candidates left out, with why (capabilities the deployment lacks).
    skipped: tuple[tuple[str, str], ...] = ()
    #: How to execute the candidates (from the matched rule); None = deployment defaults.
    options: ExecutionOptions | None = None

    def header(self) -> str:
        """Short form for the ``x-switchpoint-route`` response header."""
        order = ",".join(c.deployment.name for c in self.candidates)
        return f"model={self.model}; candidates={order}"


def _needs(request: ChatRequest) -> list[str]:
    needs: list[str] = []
    if request.tools:
        needs.append("tools")
    if _has_image(request.messages):
        needs.append("vision")
    if request.response_format is not None and request.response_format.type == "json_schema":
        needs.append("json_schema")
    if request.stream:
        needs.append("streaming")
    return needs


def _has_image(messages: list[Message]) -> bool:
    return any(isinstance(p, ImagePart) for m in messages for p in m.parts)


class Router:
    __slots__ = ("config",)

    def __init__(self, config: Config) -> None:
        self.config = config

    def known(self, model: str) -> bool:
        return self.config.candidates(model) is not None

    def deployments_for(self, model: str, kind: str) -> tuple[Deployment, ...]:
        deps = self.config.candidates(model)
        if deps is None:
            raise ModelNotFound(f"The model '{model}' does not exist", param="model", code="model_not_found")
        deps = tuple(d for d in deps if d.kind == kind)
        if not deps:
            raise BadRequest(f"The model '{model}' does not serve {kind} requests", param="model")
        return deps

    def route(self, request: ChatRequest) -> Decision:
        deps = self.deployments_for(request.model, "chat")
        needs = _needs(request)
        chosen: list[Candidate] = []
        skipped: list[tuple[str, str]] = []
        for rank, dep in enumerate(deps):
            missing = [n for n in needs if n not in dep.capabilities]
            if missing:
                skipped.append((dep.name, "lacks " + "+".join(missing)))
                continue
            chosen.append(Candidate(deployment=dep, reason=f"priority {rank + 1}"))
        if not chosen:
            why = "; ".join(f"{n}: {r}" for n, r in skipped)
            raise BadRequest(
                f"No deployment behind '{request.model}' supports this request ({why})", param="model"
            )
        return Decision(model=request.model, candidates=tuple(chosen), skipped=tuple(skipped))
