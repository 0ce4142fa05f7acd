"""OpenAI's audio and image endpoints: ``/v1/audio/transcriptions``, ``/v1/audio/translations``
(multipart), ``/v1/audio/speech`` and ``/v1/images/generations`` (JSON).

The model names an alias (or deployment) whose deployments of kind ``audio`` (the audio
endpoints) or ``image`` (generations) take the request, in order, with the executor's retries
and failover; keys and their allowed aliases hold as on the chat routes. The body is read into
a :class:`~switchpoint.canonical.MediaRequest` (checked enough to answer a bad one with a 400
here), forwarded with the deployment's own model id, and the upstream's answer is passed back
as it came. The request's record carries its units (seconds, characters, images), which the
ledger prices (docs/providers.md).

The key's limits and budgets hold as on chat and embeddings (docs/governance.md): admitted
before the upstream call (RPM counts it, max_parallel holds a slot until it ends, TPM takes the
text's estimate), its budgets reserve what it can cost when that is known up front — a
speech's characters, the images asked for, a WAV's seconds — at the deployment's per-unit
price, and it is settled once, however it ends, to its units at the answering deployment's
price (what the ledger books).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from switchpoint.api.chat import JSON, error_reply, internal_error, make_record, request_id
from switchpoint.api.dialect import Dialect
from switchpoint.canonical import MediaFile, MediaOperation, MediaRequest, MediaResponse, MediaUnits
from switchpoint.config import Deployment, TimeoutLimits
from switchpoint.errors import BadRequest, SwitchpointError
from switchpoint.executor import RequestContext
from switchpoint.governance.access import check_alias
from switchpoint.governance.budgets import units_real_cost
from switchpoint.governance.limits import text_tokens
from switchpoint.governance.principal import Principal
from switchpoint.multipart import MultipartError, boundary_of, parse
from switchpoint.records import RequestRecord
from switchpoint.wav import wav_seconds

if TYPE_CHECKING:
    from switchpoint.api.app import Gateway

BodyReader = Callable[[Request, int], Awaitable[bytes]]

#: Path → (operation, deployment kind, multipart, the fields that must be non-empty strings).
OPERATIONS: dict[str, tuple[MediaOperation, str, bool, tuple[str, ...]]] = {
    "/v1/audio/transcriptions": ("audio/transcriptions", "audio", True, ("model",)),
    "/v1/audio/translations": ("audio/translations", "audio", True, ("model",)),
    "/v1/audio/speech": ("audio/speech", "audio", False, ("model", "input", "voice")),
    "/v1/images/generations": ("images/generations", "image", False, ("model", "prompt")),
}


def _form(body: bytes, content_type: str) -> tuple[dict[str, Any], list[MediaFile]]:
    boundary = boundary_of(content_type)
    if boundary is None:
        raise BadRequest("this endpoint takes a multipart/form-data body (the audio as 'file')")
    try:
        parts = parse(body, boundary)
    except MultipartError as exc:
        raise BadRequest(f"could not read the multipart body: {exc}") from None
    fields: dict[str, Any] = {}
    files: list[MediaFile] = []
    for p in parts:
        if p.filename is not None:
            files.append(
                MediaFile(field=p.name, data=p.data, filename=p.filename, content_type=p.content_type)
            )
        elif p.name in fields:  # a repeated field (timestamp_granularities[]) keeps every value
            prior = fields[p.name]
            fields[p.name] = [*prior, p.text()] if isinstance(prior, list) else [prior, p.text()]
        else:
            fields[p.name] = p.text()
    if not any(f.field == "file" and f.data for f in files):
        raise BadRequest("'file': required (the audio, as a file part)", param="file")
    return fields, files


def decode(path: str, body: bytes, content_type: str) -> MediaRequest:
    """The client's body as a :class:`MediaRequest`; a :class:`BadRequest` naming what is wrong."""
    operation, _, multipart, required = OPERATIONS[path]
    files: list[MediaFile] = []
    if multipart:
        fields, files = _form(body, content_type)
    else:
        try:
            fields = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"could not parse the JSON body: {exc}") from None
        if not isinstance(fields, dict):
            raise BadRequest("the request body must be a JSON object")
    for name in required:
        value = fields.get(name)
        if name == "voice" and isinstance(value, dict):  # a custom voice: {"id": ...}
            continue
        if not isinstance(value, str) or not value:
            raise BadRequest(f"'{name}': required, a non-empty string", param=name)
    user = fields.get("user")
    return MediaRequest(
        operation=operation,
        model=fields["model"],
        fields=fields,
        files=files,
        multipart=multipart,
        user=user if isinstance(user, str) else None,
    )


async def forward(
    gw: Gateway, request: MediaRequest, deployments: tuple[Deployment, ...], ctx: RequestContext
) -> MediaResponse:
    """The request on its deployments, in order, with the executor's retries and failover."""
    ex = gw.executor

    async def once(dep: Deployment, limits: TimeoutLimits, t0: float) -> MediaResponse:
        adapter = ex.adapter(dep.family)
        resp = await ex._send(adapter, dep, adapter.build_media(request, dep), limits)
        return adapter.parse_media(resp, request)

    result, dep, t0 = await ex._run(deployments, None, ctx, request.model, once, streamed=False)
    ex._succeeded(ctx, dep, t0, None)
    return result


def reservation(request: MediaRequest) -> tuple[int, MediaUnits]:
    """What admission reserves for ``request``: (its text's token estimate, for TPM; the units
    its budgets reserve). Speech: its input's characters; images: the ``n`` asked for (1 by
    default); a transcription or translation: the seconds of a WAV file, else 0 (its length
    is known only from the answer — the budget then holds it only once it is settled)."""
    fields, op = request.fields, request.operation
    if op == "audio/speech":
        text = fields.get("input")
        chars = len(text) if isinstance(text, str) else 0
        return text_tokens([text] if isinstance(text, str) else []), MediaUnits(
            unit="characters", quantity=chars
        )
    if op == "images/generations":
        prompt = fields.get("prompt")
        n = fields.get("n", 1)
        count = float(n) if isinstance(n, int | float) and not isinstance(n, bool) and n > 0 else 1.0
        tokens = text_tokens([prompt] if isinstance(prompt, str) else [])
        return tokens, MediaUnits(unit="images", quantity=count)
    prompt = fields.get("prompt")
    tokens = text_tokens([prompt]) if isinstance(prompt, str) else 0
    return tokens, MediaUnits(unit="seconds", quantity=wav_seconds(request) or 0.0)


def _handler(
    gw: Gateway, dialect: Dialect, path: str, read_body: BodyReader
) -> Callable[[Request], Awaitable[Response]]:
    kind = OPERATIONS[path][1]
    endpoint = OPERATIONS[path][0].replace("/", ".")

    async def handle(request: Request) -> Response:
        rid = request_id(request.headers)
        ctx = RequestContext(rid)
        headers = {"x-request-id": rid}
        model, principal, end_user = "", None, None
        status, error = 200, None
        units: MediaUnits | None = None
        try:
            principal = await gw.auth.principal(request.headers)
            body = await read_body(request, gw.config.max_body_bytes)
            mreq = decode(path, body, request.headers.get("content-type", ""))
            model, end_user = mreq.model, mreq.user
            check_alias(principal, model)
            deployments = gw.router.deployments_for(model, kind)
            tokens, reserve = reservation(mreq)
            admission = await gw.gate.admit(  # limits and budgets, as for chat, priced by units
                principal,
                deployments,
                rid=rid,
                prompt_tokens=tokens,
                exact=False,
                max_tokens=0,
                request_headers=request.headers,
                headers=headers,
                units=reserve,
            )
            if admission is not None and admission.deployments is not None:
                deployments = admission.deployments
            try:
                result = await forward(gw, mreq, deployments, ctx)
                units = result.units
            finally:  # answered, failed or cancelled: settled once, as the ledger prices it
                if admission is not None:
                    admission.settle(
                        ctx.attempts,
                        cost=units_real_cost(ctx.attempts, gw.gate.deployments, units),
                        tokens=admission.reserved_tokens,
                    )
            headers["x-switchpoint-deployment"] = ctx.deployment or ""
            return Response(result.body, headers=headers, media_type=result.content_type)
        except Exception as exc:
            err = exc if isinstance(exc, SwitchpointError) else internal_error(exc, rid)
            status, error = err.status, err.kind
            reply = error_reply(dialect, err, headers)
            return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=JSON)
        finally:
            gw.accounting.submit(_record(ctx, endpoint, model, status, error, principal, end_user, units))

    return handle


def _record(
    ctx: RequestContext,
    endpoint: str,
    model: str,
    status: int,
    error: str | None,
    principal: Principal | None,
    end_user: str | None,
    units: MediaUnits | None,
) -> RequestRecord:
    record = make_record(
        ctx,
        dialect="openai",
        endpoint=endpoint,
        model=model,
        stream=False,
        status=status,
        error=error,
        principal=principal,
        end_user=end_user,
    )
    return msgspec.structs.replace(record, units=units) if units is not None else record


def routes(gw: Gateway, dialect: Dialect, read_body: BodyReader) -> list[Route]:
    """The four routes, answering errors in ``dialect`` (OpenAI's)."""
    return [Route(path, _handler(gw, dialect, path, read_body), methods=["POST"]) for path in OPERATIONS]
