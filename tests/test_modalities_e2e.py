"""Audio, video and document inputs end to end: the official SDKs as clients, the gateway over
real HTTP, the simulator behind it. Routing sends a part only where the deployment declares
the modality; where none does the client gets a 400 in its dialect naming what is missing.
Every request sent upstream is validated against its family's published spec."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from media_harness import Running, oai, running, wav_bytes

from gateway_harness import GATEWAY_KEY, validate_sent

__all__ = ["oai"]  # a fixture


def wav_b64(seconds: float = 0.25) -> str:
    return base64.b64encode(wav_bytes(seconds)).decode()


# Not a playable video: the simulator, like the gateway, reads only the part's MIME type.
MP4_B64 = base64.b64encode(b"\0\0\0\x18ftypmp42" + b"\0" * 64).decode()
PDF_B64 = base64.b64encode(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n").decode()


def document(sim: str) -> dict[str, Any]:
    key = "env:E2E_UPSTREAM_KEY"
    return {
        "server": {"master_key": "env:E2E_GATEWAY_KEY", "max_body_bytes": 4 * 1024 * 1024},
        "providers": {
            "p-openai": {"family": "openai", "base_url": f"{sim}/openai/v1", "api_key": key},
            "p-anthropic": {"family": "anthropic", "base_url": f"{sim}/anthropic", "api_key": key},
            "p-gemini": {"family": "gemini", "base_url": f"{sim}/gemini/v1beta", "api_key": key},
        },
        "deployments": {
            "d-gemini": {
                "provider": "p-gemini",
                "model": "sim-gemini",
                "capabilities": ["tools", "vision", "streaming", "audio", "video"],
            },
            "d-gpt-audio": {
                "provider": "p-openai",
                "model": "sim-gpt",
                "capabilities": ["tools", "vision", "streaming", "audio"],
            },
            "d-gpt": {"provider": "p-openai", "model": "sim-gpt"},
            "d-claude": {"provider": "p-anthropic", "model": "sim-claude"},
        },
        "models": {
            "gemini": "d-gemini",
            "gpt-audio": "d-gpt-audio",
            "gpt": "d-gpt",
            "claude": "d-claude",
            # The text model first: audio skips it for the one that hears.
            "mixed": ["d-claude", "d-gemini"],
        },
    }


@pytest.fixture(scope="module")
def gateway(simulator_url: str) -> Iterator[Running]:
    with running(document(simulator_url)) as gw:
        yield gw


@pytest.fixture(autouse=True)
def upstream_valid(gateway: Any) -> Iterator[None]:
    gateway.sent.clear()
    yield
    validate_sent(gateway.sent)


def _audio_message(fmt: str = "wav") -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is said here?"},
                {"type": "input_audio", "input_audio": {"data": wav_b64(), "format": fmt}},
            ],
        }
    ]


def _gemini_parts(gateway: Any) -> list[dict[str, Any]]:
    (req,) = gateway.sent
    body = json.loads(req.body)
    return [p for c in body["contents"] for p in c["parts"]]


def test_input_audio_reaches_gemini_and_is_answered(oai: openai.OpenAI, gateway: Any) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gemini", messages=_audio_message())
    assert raw.headers["x-switchpoint-deployment"] == "d-gemini"
    text = raw.parse().choices[0].message.content or ""
    assert "I received 1 audio clip." in text
    blobs = [p["inlineData"] for p in _gemini_parts(gateway) if "inlineData" in p]
    assert blobs == [{"mimeType": "audio/wav", "data": wav_b64()}]


def test_input_audio_streamed_to_gemini(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="gemini", messages=_audio_message(), stream=True)
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "I received 1 audio clip." in text


def test_input_audio_to_anthropic_only_alias_is_a_400_naming_audio(oai: openai.OpenAI, gateway: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="claude", messages=_audio_message())
    err = info.value
    assert err.status_code == 400
    assert "lacks audio" in err.message and "d-claude" in err.message
    assert err.body["param"] == "model"  # type: ignore[index]
    assert gateway.sent == []  # nothing went upstream


def test_input_audio_to_text_openai_alias_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="lacks audio"):
        oai.chat.completions.create(model="gpt", messages=_audio_message())


def test_routing_skips_the_deployment_without_audio(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="mixed", messages=_audio_message())
    assert raw.headers["x-switchpoint-deployment"] == "d-gemini"
    text = oai.chat.completions.create(model="mixed", messages=[{"role": "user", "content": "hi"}])
    assert text.choices[0].message.content


def test_input_audio_translated_for_an_openai_deployment(oai: openai.OpenAI, gateway: Any) -> None:
    # Same family: the body passes through; the simulator reads the part.
    r = oai.chat.completions.create(model="gpt-audio", messages=_audio_message("mp3"))
    assert "I received 1 audio clip." in (r.choices[0].message.content or "")


def test_anthropic_client_to_openai_audio_deployment_keeps_text(gateway: Any) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0)
    try:
        m = client.messages.create(
            model="gpt-audio", max_tokens=32, messages=[{"role": "user", "content": "Say hi"}]
        )
    finally:
        client.close()
    assert m.content[0].type == "text"


def _file_message(file: dict[str, str], text: str | None = None) -> Any:
    content: list[Any] = [{"type": "text", "text": text}] if text else []
    return [{"role": "user", "content": [*content, {"type": "file", "file": file}]}]


def test_video_file_part_reaches_gemini(oai: openai.OpenAI, gateway: Any) -> None:
    file = {"file_data": f"data:video/mp4;base64,{MP4_B64}", "filename": "clip.mp4"}
    r = oai.chat.completions.create(model="gemini", messages=_file_message(file, "Describe the clip"))
    assert "I received 1 video." in (r.choices[0].message.content or "")
    assert {"mimeType": "video/mp4", "data": MP4_B64} in [p.get("inlineData") for p in _gemini_parts(gateway)]


def test_video_to_an_audio_only_deployment_is_a_400(oai: openai.OpenAI) -> None:
    # Raw base64: the type comes from the filename.
    messages = _file_message({"file_data": MP4_B64, "filename": "clip.mp4"})
    with pytest.raises(openai.BadRequestError, match="lacks video"):
        oai.chat.completions.create(model="gpt-audio", messages=messages)


def test_pdf_file_part_becomes_an_anthropic_document(oai: openai.OpenAI, gateway: Any) -> None:
    file = {"file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": "a.pdf"}
    r = oai.chat.completions.create(model="claude", messages=_file_message(file, "Summarise"))
    assert "I received 1 document." in (r.choices[0].message.content or "")
    (req,) = gateway.sent
    block = json.loads(req.body)["messages"][0]["content"][1]
    assert block == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
        "title": "a.pdf",
    }


def test_pdf_file_part_reaches_gemini_inline(oai: openai.OpenAI, gateway: Any) -> None:
    r = oai.chat.completions.create(
        model="gemini", messages=_file_message({"file_data": PDF_B64, "filename": "r.pdf"})
    )
    assert "I received 1 document." in (r.choices[0].message.content or "")
    assert {"mimeType": "application/pdf", "data": PDF_B64} in [
        p.get("inlineData") for p in _gemini_parts(gateway)
    ]


@pytest.mark.parametrize(
    ("part", "param", "says"),
    [
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "au"}},
            "input_audio.format",
            "one of",
        ),
        ({"type": "input_audio", "input_audio": {"format": "wav"}}, "input_audio.data", "required"),
        ({"type": "input_audio"}, "input_audio", "object"),
        ({"type": "file", "file": {"filename": "a.pdf"}}, "file", "file_data or file_id"),
        ({"type": "file", "file": {"file_data": "data:video/mp4,xx"}}, "file.file_data", "data URI"),
    ],
)
def test_bad_media_parts_are_400s_naming_the_param(
    oai: openai.OpenAI, part: Any, param: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="gemini", messages=[{"role": "user", "content": [part]}])
    assert info.value.body["param"] == f"messages[0].content[0].{param}"  # type: ignore[index]
    assert says in info.value.message
