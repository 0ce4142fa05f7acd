"""``/v1/audio/transcriptions``, ``/v1/audio/translations`` and ``/v1/audio/speech`` end to end:
the official ``openai`` SDK as client (its own multipart encoding), the gateway over real HTTP,
deployments of kind ``audio`` on the simulator; keys, aliases, failover and errors as on chat.
Every request the gateway sends upstream is validated against OpenAI's published spec."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from media_harness import Running, oai, running, wav_bytes
from switchpoint.multipart import FormPart, boundary_of, encode
from switchpoint.multipart import parse as parse_form

import specs
from gateway_harness import GATEWAY_KEY, closed_port

__all__ = ["oai"]  # a fixture


def document(sim: str) -> dict[str, Any]:
    key = "env:E2E_UPSTREAM_KEY"
    return {
        "server": {"master_key": "env:E2E_GATEWAY_KEY", "max_body_bytes": 4 * 1024 * 1024},
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{sim}/openai/v1", "api_key": key},
            "p-dead": {
                "family": "openai",
                "base_url": f"http://127.0.0.1:{closed_port()}/v1",
                "api_key": key,
                "connect_timeout_s": 2,
            },
        },
        "deployments": {
            "a-whisper": {"provider": "p-openai", "model": "sim-whisper", "kind": "audio"},
            "a-tts": {"provider": "p-openai", "model": "sim-tts", "kind": "audio"},
            "a-dead": {"provider": "p-dead", "model": "gone", "kind": "audio"},
            "d-chat": {"provider": "p-openai", "model": "sim-gpt"},
        },
        "models": {
            "whisper-1": "a-whisper",
            "tts-1": "a-tts",
            "whisper-failover": ["a-dead", "a-whisper"],
            "chat": "d-chat",
        },
    }


@pytest.fixture(scope="module")
def gateway(simulator_url: str) -> Iterator[Running]:
    with running(document(simulator_url)) as gw:
        yield gw


_FORM_SCHEMAS = {"transcriptions": "CreateTranscriptionRequest", "translations": "CreateTranslationRequest"}


def _form_value(text: str) -> Any:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def check_form(req: Any) -> None:
    """A multipart request against its component schema (openapi-core does not read multipart
    bodies faithfully): text fields as values, numbers as numbers, ``name[]`` as arrays, files
    as strings (``format: binary``)."""
    form = parse_form(req.body, boundary_of(req.headers["content-type"]) or "")
    value: dict[str, Any] = {}
    for p in form:
        if p.filename is not None:
            value[p.name] = "<binary>"
        elif p.name.endswith("[]"):
            value.setdefault(p.name[:-2], []).append(p.text())
        else:
            value[p.name] = _form_value(p.text())
    specs.check_schema("openai", _FORM_SCHEMAS[req.url.rsplit("/", 1)[1]], value)


def _check_sent(sent: list[Any]) -> None:
    for req in sent:
        if "/openai/v1/" not in req.url:
            continue  # the dead deployment
        if req.headers["content-type"].startswith("multipart/form-data"):
            check_form(req)
        else:
            specs.check_request("openai", req.method, req.url, req.body, dict(req.headers))


@pytest.fixture(autouse=True)
def upstream_valid(gateway: Any) -> Iterator[None]:
    gateway.sent.clear()
    yield
    _check_sent(gateway.sent)


def test_transcription_with_the_sdk(oai: openai.OpenAI, gateway: Any) -> None:
    raw = oai.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("hello.wav", wav_bytes(0.5), "audio/wav"), language="en"
    )
    assert raw.headers["x-switchpoint-deployment"] == "a-whisper"
    assert raw.parse().text == "[simulated sim-whisper] I heard 0.5 seconds of audio."
    (sent,) = gateway.sent
    form = parse_form(sent.body, boundary_of(sent.headers["content-type"]) or "")
    fields = {p.name: p.data for p in form if p.filename is None}
    assert fields == {"model": b"sim-whisper", "language": b"en"}  # the deployment's model id
    (audio,) = [p for p in form if p.filename is not None]
    assert (audio.name, audio.filename, audio.content_type) == ("file", "hello.wav", "audio/wav")
    assert audio.data == wav_bytes(0.5)
    assert "sk-upstream" in sent.headers["authorization"]


def test_transcription_formats_pass_through(oai: openai.OpenAI) -> None:
    text = oai.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav_bytes(0.25)), response_format="text"
    )
    assert text.strip() == "[simulated sim-whisper] I heard 0.25 seconds of audio."
    verbose = oai.audio.transcriptions.create(
        model="whisper-1",
        file=("a.wav", wav_bytes(0.25)),
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )
    assert verbose.duration == 0.25


def test_translation_with_the_sdk(oai: openai.OpenAI) -> None:
    with pytest.warns(DeprecationWarning):  # the SDK marks translations deprecated
        r = oai.audio.translations.create(model="whisper-1", file=("a.wav", wav_bytes(1.0)))
    assert r.text == "[simulated sim-whisper] I heard 1 seconds of audio."


def test_transcription_fails_over_from_a_dead_deployment(oai: openai.OpenAI, gateway: Any) -> None:
    raw = oai.audio.transcriptions.with_raw_response.create(
        model="whisper-failover", file=("a.wav", wav_bytes(0.25))
    )
    assert raw.headers["x-switchpoint-deployment"] == "a-whisper"
    assert [s.url.rsplit("/v1/", 1)[1] for s in gateway.sent] == ["audio/transcriptions"] * 2
    assert gateway.sent[0].body != b""  # the same request, re-encoded for each attempt


def test_speech_with_the_sdk(oai: openai.OpenAI, gateway: Any) -> None:
    raw = oai.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input="Hello there", response_format="wav"
    )
    assert raw.headers["content-type"] == "audio/wav"
    audio = raw.content
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getnframes() == int(0.06 * len("Hello there") * 8000)
    (sent,) = gateway.sent
    assert json.loads(sent.body) == {
        "model": "sim-tts",
        "voice": "alloy",
        "input": "Hello there",
        "response_format": "wav",
    }


def test_speech_mp3_by_default(oai: openai.OpenAI) -> None:
    raw = oai.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input="Hi")
    assert raw.headers["content-type"] == "audio/mpeg"
    assert raw.content.startswith(b"SIMULATED-mp3")


def test_a_chat_alias_does_not_serve_audio(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not serve audio requests") as info:
        oai.audio.speech.create(model="chat", voice="alloy", input="Hi")
    assert info.value.body["param"] == "model"  # type: ignore[index]


def test_unknown_model_is_a_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.audio.transcriptions.create(model="nope", file=("a.wav", wav_bytes(0.1)))


def test_wrong_key_is_a_401(gateway: Any) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError):
            client.audio.speech.create(model="tts-1", voice="alloy", input="Hi")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("parts", "content_type", "says", "param"),
    [
        ([FormPart("model", b"whisper-1")], None, "'file': required", "file"),
        ([FormPart("file", wav_bytes(0.1), "a.wav")], None, "'model': required", "model"),
        ([], "application/json", "multipart/form-data", None),
        ([], "multipart/form-data; boundary=zzz", "multipart body", None),
    ],
)
def test_bad_transcription_bodies_are_openai_400s(
    gateway: Any, parts: list[FormPart], content_type: str | None, says: str, param: str | None
) -> None:
    body, ctype = encode(parts) if parts else (b"--nope\r\n", content_type or "")
    with httpx.Client() as http:
        r = http.post(
            f"{gateway.url}/v1/audio/transcriptions",
            content=body,
            headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": content_type or ctype},
        )
    assert r.status_code == 400
    err = r.json()["error"]
    assert says in err["message"] and err["param"] == param and err["type"] == "invalid_request_error"
    assert gateway.sent == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": "tts-1", "voice": "alloy"}, "'input': required"),
        ({"model": "tts-1", "input": "x"}, "'voice': required"),
        ({"voice": "alloy", "input": "x"}, "'model': required"),
        ([1], "JSON object"),
    ],
)
def test_bad_speech_bodies_are_openai_400s(gateway: Any, body: Any, says: str) -> None:
    with httpx.Client() as http:
        r = http.post(
            f"{gateway.url}/v1/audio/speech", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
        )
    assert r.status_code == 400 and says in r.json()["error"]["message"]


def test_upstream_400_is_passed_in_openai_form(oai: openai.OpenAI, gateway: Any) -> None:
    # Fields the gateway does not check go upstream as they came; the upstream's 400 comes back.
    with pytest.raises(openai.BadRequestError, match="response_format"):
        oai.audio.speech.create(model="tts-1", voice="alloy", input="Hi", response_format="ogg")  # type: ignore[arg-type]
    assert len(gateway.sent) == 1  # not retried
    gateway.sent.clear()  # the spec rejects it too: that is the point
