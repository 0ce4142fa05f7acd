"""Audio, video and document parts through each adapter: what is built is valid against the
family's published spec; what a wire cannot carry is a clear ``bad_request`` naming the part."""

from __future__ import annotations

import json
from typing import Any

import pytest

from switchpoint import config
from switchpoint.canonical import ChatRequest, MediaPart, Message, TextPart
from switchpoint.errors import ConfigError, ProviderError
from switchpoint.providers import adapter_for

import specs

CFG = config.parse(
    {
        "providers": {
            "o": {"family": "openai", "base_url": "https://api.openai.com/v1", "api_key": "env:K"},
            "a": {"family": "anthropic", "base_url": "https://api.anthropic.com", "api_key": "env:K"},
            "g": {
                "family": "gemini",
                "base_url": "https://generativelanguage.googleapis.com/v1beta",
                "api_key": "env:K",
            },
            "b": {"family": "bedrock", "region": "us-east-1"},
        },
        "deployments": {
            "openai": {"provider": "o", "model": "gpt-4o-audio-preview", "capabilities": ["audio"]},
            "anthropic": {"provider": "a", "model": "claude-sonnet-4-5"},
            "gemini": {"provider": "g", "model": "gemini-2.5-flash", "capabilities": ["audio", "video"]},
            "bedrock": {"provider": "b", "model": "amazon.nova-pro-v1:0"},
        },
    },
    env={"K": "sk-test"},
)

WAV = MediaPart(kind="audio", media_type="audio/wav", data="UklGRiQAAABXQVZF")
MP3 = MediaPart(kind="audio", media_type="audio/mpeg", data="SUQzAwAAAAAA")
FLAC = MediaPart(kind="audio", media_type="audio/flac", data="ZkxhQwAAACI=")
VIDEO = MediaPart(kind="video", media_type="video/mp4", data="AAAAGGZ0eXA=")
VIDEO_GS = MediaPart(kind="video", media_type="video/mp4", url="gs://bucket/clip.mp4")
PDF = MediaPart(kind="document", media_type="application/pdf", data="JVBERi0xLjQ=", filename="a.pdf")
TXT = MediaPart(kind="document", media_type="text/plain", data="aGVsbG8=")
FILE_ID = MediaPart(kind="document", file_id="file-abc123")


def _request(part: MediaPart, dialect: Any = "anthropic") -> ChatRequest:
    # An Anthropic-dialect request: nothing passes through to OpenAI or Gemini, all is translated.
    return ChatRequest(
        model="m",
        dialect=dialect,
        max_tokens=64,
        messages=[Message(role="user", parts=[TextPart(text="What is this?"), part])],
    )


def _build(family: str, part: MediaPart) -> tuple[Any, dict[str, Any]]:
    dep = CFG.deployments[family]
    up = adapter_for(dep.family).build_chat(_request(part), dep)
    return up, json.loads(up.body)


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (WAV, {"type": "input_audio", "input_audio": {"data": WAV.data, "format": "wav"}}),
        (MP3, {"type": "input_audio", "input_audio": {"data": MP3.data, "format": "mp3"}}),
        (
            PDF,
            {
                "type": "file",
                "file": {"file_data": f"data:application/pdf;base64,{PDF.data}", "filename": "a.pdf"},
            },
        ),
        (FILE_ID, {"type": "file", "file": {"file_id": "file-abc123"}}),
    ],
)
def test_openai_builds_media_parts_the_spec_accepts(part: MediaPart, expected: dict[str, Any]) -> None:
    up, body = _build("openai", part)
    assert body["messages"][0]["content"][1] == expected
    specs.check_request("openai", up.method, up.url, up.body, dict(up.headers))


@pytest.mark.parametrize(
    ("part", "says"),
    [
        (FLAC, "wav or mp3"),
        (VIDEO, "no video input"),
        (VIDEO_GS, "inline"),
    ],
)
def test_openai_refuses_what_chat_completions_cannot_carry(part: MediaPart, says: str) -> None:
    with pytest.raises(ProviderError) as info:
        _build("openai", part)
    assert info.value.kind == "bad_request" and says in info.value.message
    assert info.value.param == "messages[0].content"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (WAV, {"inlineData": {"mimeType": "audio/wav", "data": WAV.data}}),
        (FLAC, {"inlineData": {"mimeType": "audio/flac", "data": FLAC.data}}),
        (VIDEO, {"inlineData": {"mimeType": "video/mp4", "data": VIDEO.data}}),
        (VIDEO_GS, {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/clip.mp4"}}),
        (PDF, {"inlineData": {"mimeType": "application/pdf", "data": PDF.data}}),
    ],
)
def test_gemini_builds_inline_and_file_data_the_spec_accepts(
    part: MediaPart, expected: dict[str, Any]
) -> None:
    up, body = _build("gemini", part)
    assert body["contents"][0]["parts"][1] == expected
    specs.check_request("gemini", up.method, up.url, up.body, dict(up.headers))


def test_gemini_refuses_an_openai_file_id() -> None:
    with pytest.raises(ProviderError, match="only be read by an OpenAI model") as info:
        _build("gemini", FILE_ID)
    assert info.value.param == "messages[0].content[1]"


@pytest.mark.parametrize(
    ("part", "source"),
    [
        (PDF, {"type": "base64", "media_type": "application/pdf", "data": PDF.data}),
        (TXT, {"type": "text", "media_type": "text/plain", "data": "hello"}),
        (
            MediaPart(kind="document", media_type="application/pdf", url="https://example.com/a.pdf"),
            {"type": "url", "url": "https://example.com/a.pdf"},
        ),
    ],
)
def test_anthropic_builds_document_blocks_the_spec_accepts(part: MediaPart, source: dict[str, Any]) -> None:
    dep = CFG.deployments["anthropic"]
    up = adapter_for("anthropic").build_chat(_request(part, "openai"), dep)
    block = json.loads(up.body)["messages"][0]["content"][1]
    assert block["type"] == "document" and block["source"] == source
    specs.check_request("anthropic", up.method, up.url, up.body, dict(up.headers))


@pytest.mark.parametrize(
    ("part", "says"), [(WAV, "no audio input"), (VIDEO, "no video input"), (FILE_ID, "file_id")]
)
def test_anthropic_refuses_audio_video_and_file_ids(part: MediaPart, says: str) -> None:
    with pytest.raises(ProviderError, match=says):
        adapter_for("anthropic").build_chat(_request(part, "openai"), CFG.deployments["anthropic"])


def test_bedrock_converse_refuses_media_parts() -> None:
    with pytest.raises(ProviderError, match="cannot be sent to a Bedrock Converse model") as info:
        adapter_for("bedrock").build_chat(_request(WAV, "openai"), CFG.deployments["bedrock"])
    assert info.value.param == "messages[0].content[1]"


def test_config_refuses_audio_on_anthropic_and_media_kinds_off_openai() -> None:
    doc: dict[str, Any] = {
        "providers": {
            "a": {"family": "anthropic", "base_url": "https://api.anthropic.com"},
            "g": {"family": "gemini", "base_url": "https://generativelanguage.googleapis.com/v1beta"},
        },
        "deployments": {
            "claude": {"provider": "a", "model": "claude-sonnet-4-5", "capabilities": ["audio"]},
            "imagen": {"provider": "g", "model": "imagen-4", "kind": "image"},
        },
    }
    with pytest.raises(ConfigError) as info:
        config.parse(doc)
    text = str(info.value)
    assert "claude.capabilities: the anthropic family takes no audio or video input" in text
    assert "imagen.kind: image deployments speak the openai family's wire" in text


def test_vertex_gemini_sends_video_as_gemini_does() -> None:
    cfg = config.parse(
        {
            "providers": {
                "v": {"family": "vertex", "project": "p", "location": "us-central1", "api_key": "env:K"}
            },
            "deployments": {"g": {"provider": "v", "model": "gemini-2.5-pro", "capabilities": ["video"]}},
        },
        env={"K": "AIzaSyTest"},
    )
    up = adapter_for("vertex").build_chat(_request(VIDEO_GS), cfg.deployments["g"])
    assert up.url.endswith("/publishers/google/models/gemini-2.5-pro:generateContent")
    parts = json.loads(up.body)["contents"][0]["parts"]
    assert parts[1] == {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/clip.mp4"}}
    specs.check_schema("gemini", "GenerateContentRequest", json.loads(up.body))
