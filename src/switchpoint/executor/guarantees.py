"""A routing rule's output guarantees, kept by the executor (docs/routing.md, "Output guarantees").

- **JSON**: when the request asks for JSON (``json_object``, a JSON schema, a forced tool), the
  answer is parsed and validated (JSON Schema, with ``jsonschema``). Non-streamed, an invalid
  answer is an ``invalid_output`` attempt (its tokens billed), retried or failed over within
  the plan like any other failure, so the client never sees it. Streams: ``buffer`` reads the
  whole stream before committing to it (the same retries); ``validate`` forwards the stream as
  it comes and checks it at the end: the request is then recorded with ``invalid_output``.
- **Output budget**: the request's room (the rule's per-request budget, what its session and
  task have left) caps ``max_tokens`` upstream; a stream whose output still crosses it is ended
  by the gateway with a ``length`` finish. Either way the request is recorded with
  ``output_budget`` (status 200). Session and task spending is counted per process.

Requests of rules without guarantees never reach this module (``Decision.guarantees`` is None).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

from switchpoint.canonical import (
    CONTENT_EVENTS,
    Accumulator,
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    Part,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallPart,
    Usage,
    UsageUpdate,
)
from switchpoint.errors import OutputBudgetSpent, ProviderError
from switchpoint.executor.stream import Batch, CommittedStream, Opened
from switchpoint.health import HealthRegistry
from switchpoint.routing import Decision
from switchpoint.routing.presets import cap_output
from switchpoint.tokens import count_text

if TYPE_CHECKING:
    from switchpoint.executor.core import RequestContext

#: Sessions and tasks whose spending is kept (the least recently used are forgotten).
MAX_TRACKED = 100_000


class InvalidOutput(ProviderError):
    """An answer that is not the JSON asked for; keeps the attempt's usage (it was billed)."""

    def __init__(self, message: str, usage: Usage | None) -> None:
        super().__init__("invalid_output", message, upstream_status=200)
        self.usage = usage


class JsonCheck:
    """What an answer must be: a JSON document (an object for ``json_object``) valid against
    ``schema``, in the text or, for a forced tool, in that tool call's arguments."""

    __slots__ = ("_validator", "object_only", "tool")

    def __init__(self, schema: dict[str, Any] | None, *, tool: str | None, object_only: bool) -> None:
        self.tool = tool
        self.object_only = object_only
        self._validator: Any = None
        if schema:
            self._validator = _validator(schema)

    def problem(self, text: str | None) -> str | None:
        """Why ``text`` is not the JSON asked for (None: it is)."""
        if text is None:
            return f"the answer did not call the tool '{self.tool}'"
        try:
            doc = msgspec.json.decode(text.strip() or b"")
        except msgspec.DecodeError as exc:
            return f"the answer is not valid JSON ({exc})"
        if self.object_only and not isinstance(doc, dict):
            return "the answer is not a JSON object"
        if self._validator is not None:
            from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

            error = best_match(self._validator.iter_errors(doc))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path)
                return f"the answer does not match the schema at '/{where}': {error.message}"[:300]
        return None

    def text_of(self, parts: list[Part]) -> str | None:
        if self.tool is None:
            return "".join([p.text for p in parts if isinstance(p, TextPart)])
        for p in parts:
            if isinstance(p, ToolCallPart) and p.name == self.tool:
                return p.arguments
        return None


def _validator(schema: dict[str, Any]) -> Any:
    """A JSON Schema validator for ``schema`` (None: the schema itself is invalid, so it is not
    applied). ``jsonschema`` is imported here, by the first rule that checks a schema: a gateway
    without such a rule never loads it."""
    import jsonschema  # type: ignore[import-untyped]

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError:
        return None
    return cls(schema)


def json_check(request: ChatRequest) -> JsonCheck | None:
    """The check a request's answer gets (None: it asks for no JSON)."""
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        schema = fmt.schema if fmt.type == "json_schema" else None
        return JsonCheck(schema, tool=None, object_only=fmt.type == "json_object")
    choice = request.tool_choice
    if choice is not None and choice.mode == "tool" and choice.name and request.tools:
        for tool in request.tools:
            if tool.name == choice.name:
                return JsonCheck(tool.parameters, tool=tool.name, object_only=True)
    return None


class Spending:
    """Output tokens used per (rule, ``session`` | ``task``, id) in this process."""

    __slots__ = ("_spent",)

    def __init__(self) -> None:
        self._spent: OrderedDict[tuple[str, str, str], int] = OrderedDict()

    def spent(self, key: tuple[str, str, str]) -> int:
        return self._spent.get(key, 0)

    def add(self, keys: tuple[tuple[str, str, str], ...], tokens: int) -> None:
        spent = self._spent
        for key in keys:
            spent[key] = spent.get(key, 0) + tokens
            spent.move_to_end(key)
        while len(spent) > MAX_TRACKED:
            spent.popitem(last=False)


class Guard:
    """One request's guarantees: its JSON check and its output room."""

    __slots__ = ("buffer", "capped", "check", "keys", "limit", "spending")

    def __init__(
        self,
        check: JsonCheck | None,
        buffer: bool,
        limit: int | None,
        capped: bool,
        keys: tuple[tuple[str, str, str], ...],
        spending: Spending,
    ) -> None:
        self.check = check
        #: Streams: read whole and checked before committing.
        self.buffer = buffer
        #: Output tokens the request may use (None: no budget).
        self.limit = limit
        #: ``max_tokens`` was lowered to ``limit``: a ``length`` finish is the budget's.
        self.capped = capped
        self.keys = keys
        self.spending = spending

    def check_response(self, response: ChatResponse) -> None:
        """Raises :class:`InvalidOutput` when the answer is not the JSON asked for."""
        check = self.check
        if check is not None:
            problem = check.problem(check.text_of(response.parts))
            if problem is not None:
                raise InvalidOutput(problem, response.usage)

    def check_batch(self, batch: Batch) -> None:
        """A buffered stream, read whole: its answer checked as a non-streamed one is."""
        acc = Accumulator()
        for events, _ in batch:
            for e in events:
                acc.add(e)
        self.check_response(acc.response())

    def settle(self, ctx: RequestContext, usage: Usage | None, finish: FinishReason | None) -> None:
        """The answer is out: its output counted against the session and task, an early stop noted."""
        if self.keys and usage is not None:
            self.spending.add(self.keys, usage.output_tokens)
        if self.capped and finish == "length":
            ctx.outcome = "output_budget"


def prepare(request: ChatRequest, decision: Decision, spending: Spending) -> tuple[Guard | None, ChatRequest]:
    """The request's guard (None when none of the rule's guarantees applies to it) and the
    request to send (``max_tokens`` at most the output room). Raises :class:`OutputBudgetSpent`
    when the session's or task's budget is used up."""
    spec = decision.guarantees
    assert spec is not None
    check: JsonCheck | None = None
    buffer = False
    js = spec.json
    if js is not None and js.enabled and not (request.stream and js.stream == "off"):
        check = json_check(request)
        buffer = js.stream == "buffer"
    limit: int | None = None
    keys: list[tuple[str, str, str]] = []
    budget = spec.output_budget
    if budget is not None:
        rooms = [budget.request] if budget.request is not None else []
        rule = decision.rule or ""
        for kind, cap, ident in (
            ("session", budget.session, decision.session),
            ("task", budget.task, decision.task),
        ):
            if cap is None or ident is None:
                continue
            key = (rule, kind, ident)
            left = cap - spending.spent(key)
            if left <= 0:
                raise OutputBudgetSpent(
                    f"The {kind} '{ident}' has used its output budget of {cap} tokens (rule '{rule}')"
                )
            rooms.append(left)
            keys.append(key)
        limit = min(rooms) if rooms else None
    if check is None and limit is None:
        return None, request
    capped = limit is not None and (request.max_tokens is None or request.max_tokens > limit)
    if capped:
        assert limit is not None
        request = cap_output(request, limit)
    return Guard(check, buffer, limit, capped, tuple(keys), spending), request


def _tokens(event: StreamEvent) -> int:
    if isinstance(event, TextDelta | ThinkingDelta):
        return count_text(event.text) if event.text else 0
    if isinstance(event, ToolCallDelta):
        return count_text(event.arguments) if event.arguments else 0
    return 0


class GuardedStream(CommittedStream):
    """A committed stream under a guard: its output counted against the budget (ended with a
    ``length`` finish once it crosses it) and, in ``validate`` mode, checked at its end.

    Under a budget it is translated by the client's encoder (``family`` is empty), so the
    finish the gateway adds is written in the client's dialect whatever the upstream's wire.
    """

    __slots__ = ("_acc", "_counted", "_finish", "_guard")

    def __init__(self, opened: Opened, ctx: RequestContext, health: HealthRegistry, guard: Guard) -> None:
        super().__init__(opened, ctx, health)
        self._guard = guard
        self._acc = Accumulator() if guard.check is not None and not guard.buffer else None
        self._counted = 0
        self._finish: FinishReason | None = None
        if guard.limit is not None:
            self.family = ""

    async def next(self) -> Batch | None:
        batch = await CommittedStream.next(self)
        guard = self._guard
        if batch is None:
            self._ended()
            return None
        acc, limit = self._acc, guard.limit
        for i, (events, _) in enumerate(batch):
            for j, e in enumerate(events):
                if acc is not None:
                    acc.add(e)
                if isinstance(e, Finish):
                    self._finish = e.reason
                if limit is None:
                    continue
                if isinstance(e, UsageUpdate):
                    self._counted = max(self._counted, e.usage.output_tokens)
                else:
                    self._counted += _tokens(e)
                if self._counted > limit and isinstance(e, CONTENT_EVENTS):
                    return self._cut(batch[:i], events[: j + 1])
        return batch

    def _cut(self, before: Batch, events: list[StreamEvent]) -> Batch:
        """Past the budget: what came up to here, then the gateway's ``length`` finish."""
        used = max(self.usage.output_tokens, self._counted)
        self.usage = self.usage.merge(Usage(output_tokens=used))
        kept: list[StreamEvent] = [e for e in events if not isinstance(e, Finish)]
        self.stop()
        self._ctx.outcome = "output_budget"
        self._finish = "length"
        tail: list[StreamEvent] = [Finish(reason="length"), UsageUpdate(usage=self.usage)]
        return [*before, (kept + tail, None)]

    def _ended(self) -> None:
        """The stream is over: its output counted, a ``validate`` check made and noted."""
        guard, ctx, acc = self._guard, self._ctx, self._acc
        usage = self.usage
        if usage.output_tokens < self._counted:
            usage = usage.merge(Usage(output_tokens=self._counted))
        guard.settle(ctx, usage, self._finish)
        check = guard.check
        if (
            acc is not None
            and check is not None
            and ctx.outcome is None
            and check.problem(check.text_of(acc.response().parts)) is not None
        ):
            ctx.outcome = "invalid_output"
