"""The audio and image endpoints in the ledger: one row a request with the units it is billed
by (``audio_seconds``, ``characters``, ``images``) and its cost at the catalog's (or the
config's) per-unit price, on SQLite and PostgreSQL; a spill file written before the units
existed is replayed with them NULL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from media_harness import wav_bytes
from resilience_harness import GATEWAY_KEY, Server, document, gateway, provider
from switchpoint.config.storage import ENV_URL
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim
from switchpoint.store.engine import make_engine

from store_db import db_url, rows

__all__ = ["db_url"]


@pytest.fixture(autouse=True)
def configured_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_URL, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


def _doc(sim: str, storage: dict[str, Any]) -> dict[str, Any]:
    return document(
        {"p": provider(sim, "openai")},
        {
            "a-whisper": {"provider": "p", "model": "whisper-1", "kind": "audio"},
            "a-tts": {"provider": "p", "model": "tts-1", "kind": "audio"},
            "i-dalle": {"provider": "p", "model": "dall-e-3", "kind": "image"},
            # a model the catalog does not know, priced in the config
            "i-own": {"provider": "p", "model": "sim-image", "kind": "image", "price": {"per_image": 0.5}},
        },
        {"whisper-1": "a-whisper", "tts-1": "a-tts", "dall-e-3": "i-dalle", "own": "i-own"},
        storage=storage,
    )


def test_units_and_their_cost_are_rows(sim: str, db_url: str, tmp_path: Path) -> None:
    storage = {"url": db_url, "flush_interval_ms": 20, "spill_path": str(tmp_path / "spill.jsonl")}
    with gateway(_doc(sim, storage)) as (url, _gw, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=GATEWAY_KEY, max_retries=0)
        try:
            t = client.audio.transcriptions.create(
                model="whisper-1", file=("a.wav", wav_bytes(2.5)), response_format="verbose_json"
            )
            assert t.duration == 2.5
            client.audio.transcriptions.create(model="whisper-1", file=("b.wav", wav_bytes(0.5)))
            client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there")
            client.images.generate(model="dall-e-3", prompt="a lighthouse", n=3)
            client.images.generate(model="own", prompt="x")
            with pytest.raises(openai.BadRequestError):
                client.images.generate(model="dall-e-3", prompt="x", n=11)
        finally:
            client.close()
    engine = make_engine(db_url)
    try:
        got = rows(
            engine,
            "SELECT endpoint, alias, status, audio_seconds, characters, images, cost_usd, input_tokens "
            "FROM requests ORDER BY started_at",
        )
    finally:
        engine.dispose()
    units = [(r["endpoint"], r["status"], r["audio_seconds"], r["characters"], r["images"]) for r in got]
    assert units == [
        ("audio.transcriptions", 200, 2.5, None, None),
        ("audio.transcriptions", 200, 1.0, None, None),  # json: usage.seconds, whole seconds
        ("audio.speech", 200, None, 11, None),
        ("images.generations", 200, None, None, 3),
        ("images.generations", 200, None, None, 1),
        ("images.generations", 400, None, None, None),  # the upstream refused n=11: nothing billed
    ]
    costs = [r["cost_usd"] for r in got]
    assert costs == pytest.approx([2.5 * 0.0001, 0.0001, 11 * 0.000015, 3 * 0.04, 0.5, 0.0])
    assert all(r["input_tokens"] == 0 for r in got)


def test_a_spill_file_from_before_the_units_is_replayed(sim: str, tmp_path: Path) -> None:
    from resilience_harness import ENV
    from switchpoint.accounting.ledger import ledger_for
    from switchpoint.config import parse
    from switchpoint.store.tables import MEDIA_COLUMNS, REQUEST_COLUMNS

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spill = tmp_path / "spill.jsonl"
    old_row: list[Any] = [None] * (len(REQUEST_COLUMNS) - len(MEDIA_COLUMNS))
    names = REQUEST_COLUMNS[: len(old_row)]
    for name, value in {
        "request_id": "req-old",
        "started_at": 1.0,
        "instance": "i",
        "dialect": "openai",
        "endpoint": "chat.completions",
        "alias": "a",
        "status": 200,
    }.items():
        old_row[names.index(name)] = value
    import json

    spill.write_text(json.dumps([old_row, []]) + "\n")
    cfg = parse(_doc(sim, {"url": url, "spill_path": str(spill)}), env=ENV)
    ledger = ledger_for(cfg)
    assert ledger is not None
    ledger.start()
    import asyncio

    asyncio.run(ledger.close())
    engine = make_engine(url)
    try:
        (row,) = rows(engine, "SELECT request_id, status, audio_seconds, characters, images FROM requests")
    finally:
        engine.dispose()
    assert row == {
        "request_id": "req-old",
        "status": 200,
        "audio_seconds": None,
        "characters": None,
        "images": None,
    }
