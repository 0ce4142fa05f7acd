"""The router: from the model a client named to an ordered, explained list of candidates.

Pure: it reads the frozen config, the request, the caller's routing headers and a health
snapshot per deployment; time comes from an injected clock (session affinity) and chance from
an injected random source (weighted ordering). Steps:

1. features (size, needs, declarations); the tokenizer only near a limit;
2. which rules apply: ``auto`` and aliases go through the policy; a deployment named directly
   bypasses it when the caller may; without a ``routing`` section an alias is its deployments
   in priority order;
3. the task, when a rule needs it and the client declared none (classifier);
4. the first matching rule (else the default rule for ``auto``, or the alias's own list);
5. hard constraints (capabilities, usable context, budget), with the rule's overflow
   candidates or context trimming when the prompt fits nowhere;
6. the rule's strategy orders the rest; unhealthy deployments go to the back; a live session
   pin goes to the front;
7. the rule's parameter presets are applied to the request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec

from switchpoint.canonical import ChatRequest
from switchpoint.config import Config, Deployment
from switchpoint.errors import BadRequest, ModelNotFound, PermissionDenied
from switchpoint.health import HealthSnapshot
from switchpoint.routing import constraints, features, presets, trimming
from switchpoint.routing.affinity import AffinityStore
from switchpoint.routing.classifier import Classifier, SemanticClassifier
from switchpoint.routing.embedder import Embedder, default_embedder
from switchpoint.routing.explain import Candidate, Decision
from switchpoint.routing.features import Features
from switchpoint.routing.policy import AUTO, Policy, Rule, legacy_limits
from switchpoint.routing.strategies import STRATEGIES, Option, healthy_first

_UNKNOWN = HealthSnapshot()
#: Shrink factor between trimming attempts when the trimmed prompt still measures too long.
_TRIM_SHRINK = 0.9
_TRIM_ATTEMPTS = 3


class HealthView(Protocol):
    def snapshot(self, name: str) -> HealthSnapshot: ...


class _Screened:
    __slots__ = ("kept", "skipped")

    def __init__(self) -> None:
        self.kept: list[Option] = []
        self.skipped: list[tuple[str, str, str]] = []

    def only_context(self) -> bool:
        return not self.kept and any(k == constraints.CONTEXT for _, k, _ in self.skipped)


class Router:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        embedder: Embedder | None = None,
        affinity: AffinityStore | None = None,
    ) -> None:
        self.config = config
        spec = config.routing
        self.policy = Policy(config) if spec is not None else None
        self.rng = rng if rng is not None else random.Random()
        self.default_output_tokens = spec.default_output_tokens if spec is not None else 512
        self.currency = (spec.catalog.currency, spec.catalog.usd_rate) if spec is not None else ("USD", 1.0)
        self.token_limits = self.policy.token_limits if self.policy is not None else legacy_limits(config)
        self._plain = {
            name: Rule(None, (), tuple(d for d in deps if d.kind == "chat"))
            for name in (*config.aliases, *config.deployments)
            if (deps := config.candidates(name)) is not None
        }
        self.classifier: Classifier | None = None
        self.affinity: AffinityStore | None = None
        if spec is None:
            return
        semantic = None
        sem = spec.classifier.semantic
        if sem is not None and sem.enabled:
            emb = embedder if embedder is not None else default_embedder()
            semantic = SemanticClassifier(sem, emb) if emb is not None else None
        self.classifier = Classifier(spec.classifier, spec.default_output_tokens, semantic)
        if spec.affinity.enabled:
            if affinity is not None:
                affinity.resize(spec.affinity.ttl_s, spec.affinity.max_sessions)
            self.affinity = (
                affinity
                if affinity is not None
                else AffinityStore(spec.affinity.ttl_s, spec.affinity.max_sessions, clock)
            )

    # --- lookups used outside chat routing ---------------------------------------------------

    def known(self, model: str) -> bool:
        return model in self._plain or (self.policy is not None and model == AUTO)

    def deployments_for(self, model: str, kind: str) -> tuple[Deployment, ...]:
        if self.policy is not None and model == AUTO:
            deps: Sequence[Deployment] | None = tuple(
                {d.name: d for r in self.policy.rules for d in r.candidates}.values()
            ) or tuple(self.config.deployments.values())
        else:
            deps = self.config.candidates(model)
        if deps is None:
            raise ModelNotFound(f"The model '{model}' does not exist", param="model", code="model_not_found")
        found = tuple(d for d in deps if d.kind == kind)
        if not found:
            raise BadRequest(f"The model '{model}' does not serve {kind} requests", param="model")
        return found

    # --- chat routing -------------------------------------------------------------------------

    def features(
        self,
        request: ChatRequest,
        headers: Mapping[str, str] | None = None,
        *,
        principal: str | None = None,
        team: str | None = None,
    ) -> Features:
        return features.extract(request, headers, principal=principal, team=team)

    def route(
        self,
        request: ChatRequest,
        *,
        headers: Mapping[str, str] | None = None,
        principal: str | None = None,
        team: str | None = None,
        health: HealthView | None = None,
    ) -> Decision:
        f = features.extract(request, headers, principal=principal, team=team)
        return self.decide(request, f, health)

    async def aroute(
        self,
        request: ChatRequest,
        *,
        headers: Mapping[str, str] | None = None,
        principal: str | None = None,
        team: str | None = None,
        health: HealthView | None = None,
    ) -> Decision:
        """As :meth:`route`, with the semantic classifier (when it runs) off the event loop."""
        f = features.extract(request, headers, principal=principal, team=team)
        clf = self.classifier
        semantic = None
        if clf is not None and clf.semantic is not None:
            features.refine(f, request, self.token_limits)
            if self._needs_task(f) and clf.wants_semantic(f):
                text = features.prompt_text(request, clf.semantic.max_chars)
                semantic = await asyncio.to_thread(clf.semantic.classify, text)
        return self.decide(request, f, health, semantic=semantic)

    def pin(self, decision: Decision, deployment: str) -> None:
        """Remember which deployment served the decision's session."""
        if self.affinity is not None and decision.session is not None:
            self.affinity.pin(decision.session, deployment)

    def _needs_task(self, f: Features) -> bool:
        """Whether the task must be classified: a rule needing it comes before any other match."""
        if f.task is not None or self.policy is None:
            return False
        for rule in self.policy.rules_for(f.model) or ():
            if rule.uses_task:
                return True
            if rule.matches(f):
                return False
        return False

    def _select(self, request: ChatRequest, f: Features, semantic: tuple[str | None, float] | None) -> Rule:
        model = f.model
        policy = self.policy
        rules = policy.rules_for(model) if policy is not None else None
        if rules is None:
            plain = self._plain.get(model)
            if plain is None:
                raise ModelNotFound(
                    f"The model '{model}' does not exist", param="model", code="model_not_found"
                )
            if policy is not None and model in self.config.deployments:
                allowed = policy.direct_access
                if allowed is not None and f.principal not in allowed:
                    raise PermissionDenied(
                        f"This key may not name the deployment '{model}' directly; use 'auto' or a model alias",
                        param="model",
                    )
            features.refine(f, request, self.token_limits)
            return plain
        assert policy is not None and self.classifier is not None
        features.refine(f, request, self.token_limits)
        for rule in rules:
            if rule.uses_task and f.task is None and f.task_source is None:
                # classify once, on reaching the first rule that needs the task
                clf = self.classifier
                if semantic is None and clf.semantic is not None and clf.wants_semantic(f):
                    semantic = clf.semantic.classify(features.prompt_text(request, clf.semantic.max_chars))
                clf.classify(f, semantic)
                f.task_source = f.task_source or "none"
            if rule.matches(f):
                return rule
        if model != AUTO:
            return policy.alias_rules[model]
        if policy.default is not None:
            return policy.default
        raise BadRequest("No routing rule matches this request and no default rule is set", param="model")

    @staticmethod
    def _reserve(request: ChatRequest, rule: Rule) -> int:
        """Output tokens the upstream call will ask for (0: no limit is sent)."""
        if request.max_tokens is not None:
            return request.max_tokens
        preset = rule.params.max_tokens if rule.params is not None else None
        return preset or 0

    def _screen(
        self,
        deps: Sequence[Deployment],
        rule: Rule,
        f: Features,
        request: ChatRequest,
        out_tokens: int,
        reserve: int,
        health: HealthView | None,
        into: _Screened,
    ) -> None:
        needs = f.needs
        family_factor = features.family_factor
        if not f.tokens_exact:
            near = f.prompt_tokens * features.REFINE_FACTOR
            for d in deps:
                if near * family_factor(d.family) + reserve > d.usable_window:
                    features.count(f, request)  # near a window once the output reserve is counted
                    break
        budget = f.max_cost_usd
        prompt = f.prompt_tokens
        kept = into.kept
        for rank, dep in enumerate(deps, len(kept)):
            n = constraints.on_family(prompt, family_factor(dep.family))
            cost = constraints.cost_of(dep.price, n, out_tokens)
            why = constraints.check(dep, n, needs, out_tokens, cost, reserve, budget)
            if why is not None:
                into.skipped.append((dep.name, why[0], why[1]))
                continue
            snap = health.snapshot(dep.name) if health is not None else _UNKNOWN
            kept.append(Option(dep, rank, cost, snap, rule.weight(dep)))

    def _trim(
        self,
        request: ChatRequest,
        f: Features,
        rule: Rule,
        out_tokens: int,
        reserve: int,
        health: HealthView | None,
    ) -> tuple[ChatRequest, Features, _Screened, str] | None:
        assert rule.context is not None
        needs = f.needs
        capable = [d for d in (*rule.candidates, *rule.overflow) if all(n in d.capabilities for n in needs)]
        if not capable:
            return None
        room = max((d.usable_window - reserve) / features.family_factor(d.family) for d in capable)
        target = room
        for _ in range(_TRIM_ATTEMPTS):
            cut = trimming.trim(request, f.prompt_tokens, int(target), rule.context)
            if cut is None:
                return None
            size, _ = features.cheap_tokens(cut.request)
            f2 = msgspec.structs.replace(f, prompt_tokens=size, tokens_exact=False)
            features.refine(f2, cut.request, self.token_limits)
            screened = _Screened()
            self._screen(capable, rule, f2, cut.request, out_tokens, reserve, health, screened)
            if screened.kept:
                return cut.request, f2, screened, cut.note
            target *= _TRIM_SHRINK
        return None

    def decide(
        self,
        request: ChatRequest,
        f: Features,
        health: HealthView | None = None,
        *,
        semantic: tuple[str | None, float] | None = None,
    ) -> Decision:
        """Route ``request`` whose features are ``f`` (see :meth:`route`)."""
        rule = self._select(request, f, semantic)
        reserve = self._reserve(request, rule)
        out_tokens = reserve or self.default_output_tokens
        screened = _Screened()
        self._screen(rule.candidates, rule, f, request, out_tokens, reserve, health, screened)
        trimmed: str | None = None
        if screened.only_context() and rule.overflow:
            self._screen(rule.overflow, rule, f, request, out_tokens, reserve, health, screened)
            for o in screened.kept:
                o.reason = "overflow (larger window); "
        if screened.only_context() and rule.context is not None and rule.context.overflow == "trim":
            done = self._trim(request, f, rule, out_tokens, reserve, health)
            if done is not None:
                request, f, screened, trimmed = done
        if not screened.kept:
            raise constraints.failure(f.model, screened.skipped)
        limit = f.latency_ms if f.latency_ms is not None else rule.max_latency_ms
        kept = screened.kept
        # Only the overflow step gives reasons before ordering (a trimmed retry screens anew).
        prefixes = {id(o): o.reason for o in kept if o.reason} if trimmed is None and rule.overflow else None
        order = STRATEGIES[rule.strategy](kept, stream=f.stream, rng=self.rng, limit_ms=limit)
        if prefixes:
            for o in order:
                o.reason = prefixes.get(id(o), "") + o.reason
        order = healthy_first(order)
        affinity = self._affinity(f, order) if f.session is not None else None
        executed, applied = presets.apply(request, rule.params)
        return Decision(
            model=f.model,
            candidates=tuple(
                [
                    Candidate(deployment=o.dep, reason=o.reason, cost_usd=o.cost, healthy=o.health.healthy)
                    for o in order
                ]
            ),
            skipped=tuple([(n, r) for n, _, r in screened.skipped]) if screened.skipped else (),
            options=rule.options,
            guarantees=rule.guarantees,
            rule=rule.name,
            task=f.task,
            task_source=f.task_source,
            task_score=f.task_score,
            strategy=rule.strategy,
            request=executed if executed is not request or trimmed is not None else None,
            presets=applied,
            trimmed=trimmed,
            prompt_tokens=f.prompt_tokens,
            tokens_exact=f.tokens_exact,
            output_tokens=out_tokens,
            session=f.session,
            affinity=affinity,
            currency=self.currency,
            tags=tuple([f"{k}={v}" for k, v in f.tags.items()]) if f.tags else (),
        )

    def _affinity(self, f: Features, order: list[Option]) -> str | None:
        if self.affinity is None or f.session is None:
            return None
        pinned = self.affinity.get(f.session)
        if pinned is None:
            return "new session"
        for i, o in enumerate(order):
            if o.dep.name == pinned:
                if not o.health.healthy:
                    return f"re-pin: {pinned} is unhealthy"
                order.insert(0, order.pop(i))
                o.reason = "session affinity; " + o.reason
                return f"kept on {pinned}"
        return f"re-pin: {pinned} is not a candidate for this request"
