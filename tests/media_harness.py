"""Shared by the audio, image and modality tests: a generated WAV, and a gateway of the test's
own config over loopback, recording what it sends upstream."""

from __future__ import annotations

import contextlib
import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from switchpoint.api.app import create_app
from switchpoint.config import parse

from gateway_harness import ENV, GATEWAY_KEY, RecordingTransport
from servers import serve_in_thread


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV of ``seconds``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


@dataclass
class Running:
    url: str
    sent: list[Any]
    gw: Any


@contextlib.contextmanager
def running(document: dict[str, Any]) -> Iterator[Running]:
    """The gateway for ``document`` (``env:`` names from ``gateway_harness.ENV``), served."""
    transport = RecordingTransport()
    app = create_app(parse(document, env=ENV), transport=transport)
    with serve_in_thread(app) as url:
        yield Running(url, transport.sent, app.state.gateway)


@pytest.fixture
def oai(gateway: Running) -> Iterator[openai.OpenAI]:
    """The ``openai`` SDK on the test module's ``gateway`` (import it as a fixture)."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
    yield client
    client.close()
