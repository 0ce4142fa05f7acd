"""A pytest plugin for the child run of an SDK's suite: the objects its tests name, made first.

The suites are written for a mock server that answers any id, so their tests retrieve, delete
and cancel objects they never created (``"file_id"``, ``"batch_id"``, ``"resp_677efb…"``…) and
create a batch from a file they never uploaded (``"input_file_id"``). Before each such test this
plugin writes that object under exactly that id into the gateway's own database, through the
store modules the gateway reads (``switchpoint.store.batches``, ``switchpoint.store.responses``,
``switchpoint.store.chat_completions``),
owned by whom the suite's API key is to the gateway; after the test it is removed again (a
delete or cancel test changes it, and the next test gets a fresh one: delete, then insert).

The gateway keeps none of these objects in memory: every retrieve, delete, cancel, content,
input-items or batch-create request reads its row from the database, so a row written here is
what the next request sees. The one process that holds rows is the batch runner, which takes an
active batch no runner holds; the seeded running batches are therefore held by another runner's
lease (as a replica sharing the database holds the batches it runs), written ended first and
moved to ``in_progress`` only once held, so the gateway's own runner never takes them.

Loaded with ``-p sdk_seed`` (this folder on ``PYTHONPATH``); ``SDK_SUITE`` names the suite,
``SDK_SEED_DATABASE_URL`` the gateway's database and ``SDK_SEED_OWNER`` the owner its stores key
the suite's objects by.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import pytest
from sqlalchemy import Engine

from switchpoint.store import batches as batch_store
from switchpoint.store import chat_completions as completion_store
from switchpoint.store import responses as response_store
from switchpoint.store.engine import make_engine

#: An alias of the harness's gateway (``outside_harness.SDK_MODELS``) on each wire.
OPENAI_MODEL = "gpt-6.2-astra"
ANTHROPIC_MODEL = "claude-opus-5-5"
#: The runner holding the seeded running batches: none of the gateway's processes.
HOLDER = "sdk-suite-seed"
DAY_S = 24 * 3600.0
#: The requests of the seeded OpenAI batch and of its input file: (custom_id, body).
RESPONSE_REQUESTS = [
    (f"request-{i}", {"model": OPENAI_MODEL, "input": text})
    for i, text in enumerate(("Say hello.", "Say goodbye."), start=1)
]

FILE_ID = "file_id"
INPUT_FILE_ID = "input_file_id"
BATCH_ID = "batch_id"
RESPONSE_ID = "resp_677efb5139a88190b512bc3fef8e535d"
ITEMS_RESPONSE_ID = "response_id"
MESSAGE_BATCH_ID = "message_batch_id"
COMPLETION_ID = "completion_id"


@dataclass(frozen=True)
class Seeds:
    engine: Engine
    owner: str

    # --- files -------------------------------------------------------------------------------

    def file(self, file_id: str, purpose: str, filename: str, content: bytes) -> None:
        now = time.time()
        row = batch_store.FileRow(
            id=file_id,
            owner=self.owner,
            purpose=purpose,
            filename=filename,
            bytes=len(content),
            created_at=now,
        )
        batch_store.delete_file(self.engine, file_id, self.owner)
        batch_store.insert_file(self.engine, row, content)

    def user_file(self) -> None:
        """``file_id``: a file as the suite's own ``files.create`` uploads it."""
        self.file(FILE_ID, "user_data", "example.txt", b"Example data")

    def batch_input(self) -> None:
        """``input_file_id``: a batch input file of valid ``/v1/responses`` requests (the endpoint
        the suite's ``batches.create`` names)."""
        content = b"".join(
            msgspec.json.encode({"custom_id": cid, "method": "POST", "url": "/v1/responses", "body": body})
            + b"\n"
            for cid, body in RESPONSE_REQUESTS
        )
        self.file(INPUT_FILE_ID, "batch", "batch_input.jsonl", content)

    # --- batches -----------------------------------------------------------------------------

    def _batch(
        self,
        batch_id: str,
        dialect: str,
        lines: list[tuple[str, str]],
        created: float,
        in_progress_at: float | None = None,
        completed_at: float | None = None,
    ) -> None:
        """The batch under ``batch_id``, its lines pending, written ``completed`` (not active: no
        runner takes it)."""
        row = batch_store.BatchRow(
            id=batch_id,
            owner=self.owner,
            dialect=dialect,
            endpoint="/v1/responses" if dialect == "openai" else "/v1/messages",
            input_file_id=INPUT_FILE_ID if dialect == "openai" else None,
            completion_window="24h",
            status="completed",
            created_at=created,
            expires_at=created + DAY_S,
            total=len(lines),
            in_progress_at=in_progress_at,
            completed_at=completed_at,
        )
        batch_store.delete_batch(self.engine, batch_id, self.owner)
        batch_store.insert_batch(self.engine, row, lines)

    def _running(self, batch_id: str, dialect: str, lines: list[tuple[str, str]]) -> None:
        """A batch in progress, held by another runner (see the module's docstring)."""
        now = time.time()
        self._batch(batch_id, dialect, lines, now)
        batch_store.save_results(self.engine, batch_id, [], HOLDER, now + batch_store.LEASE_S)
        moved = batch_store.set_status(
            self.engine, batch_id, "in_progress", only_from=("completed",), in_progress_at=now
        )
        assert moved, batch_id

    def openai_batch(self) -> None:
        """``batch_id``: a batch of the input file's requests, in progress (so it may be
        cancelled)."""
        self.batch_input()
        self._running(BATCH_ID, "openai", [(cid, json.dumps(body)) for cid, body in RESPONSE_REQUESTS])

    @staticmethod
    def _message_params() -> str:
        return json.dumps(
            {
                "model": ANTHROPIC_MODEL,
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": "Hello, world"}],
            }
        )

    def running_message_batch(self) -> None:
        """``message_batch_id``: a Message Batch in progress (retrieve, cancel)."""
        self._running(MESSAGE_BATCH_ID, "anthropic", [("my-custom-id-1", self._message_params())])

    def ended_message_batch(self) -> None:
        """``message_batch_id``: a Message Batch that has ended, its one request answered (delete)."""
        now = time.time()
        lines = [("my-custom-id-1", self._message_params())]
        self._batch(MESSAGE_BATCH_ID, "anthropic", lines, now - 60, in_progress_at=now - 60, completed_at=now)
        message = {
            "id": "msg_seeded0000000000000001",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 3},
        }
        answered = batch_store.LineResult(
            line=0,
            custom_id="my-custom-id-1",
            status=batch_store.SUCCEEDED,
            status_code=200,
            request_id=f"{MESSAGE_BATCH_ID}-0",
            result=json.dumps(message),
        )
        batch_store.save_results(self.engine, MESSAGE_BATCH_ID, [answered], HOLDER, now)

    # --- stored responses --------------------------------------------------------------------

    def _response(self, response_id: str, items: list[dict[str, object]], *, running: bool = False) -> None:
        """A stored response under ``response_id``; ``running``: a background one in progress,
        run by another worker that said it was alive just now (so the gateway's stale sweep
        leaves it; a cancel marks it cancelled, as for a run on another replica)."""
        now = time.time()
        # The Response object in the shape the gateway stores its own (api/responses_out.py).
        doc = {
            "id": response_id,
            "object": "response",
            "created_at": int(now),
            "status": "in_progress" if running else "completed",
            "background": running,
            "completed_at": None if running else int(now),
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": OPENAI_MODEL,
            "output": []
            if running
            else [
                {
                    "type": "message",
                    "id": "msg_" + response_id.removeprefix("resp_"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
                }
            ],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": 9,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 3,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 12,
            },
            "metadata": {},
        }
        row = response_store.StoredResponse(
            id=response_id,
            owner=self.owner,
            created_at=now,
            model=OPENAI_MODEL,
            previous_response_id=None,
            input_items=items,
            response=msgspec.json.encode(doc),
            status="in_progress" if running else "completed",
            background=running,
            worker=HOLDER if running else None,
            heartbeat_at=now if running else None,
        )
        response_store.remove(self.engine, response_id, self.owner)
        response_store.insert(self.engine, row)

    def stored_response(self) -> None:
        """``resp_677efb…``: a stored response (retrieve, delete)."""
        self._response(RESPONSE_ID, [{"type": "message", "role": "user", "content": "Say hello."}])

    def background_response(self) -> None:
        """``resp_677efb…``: a background response still in progress (cancel)."""
        self._response(
            RESPONSE_ID, [{"type": "message", "role": "user", "content": "Say hello."}], running=True
        )

    def items_response(self) -> None:
        """``response_id``: a stored response with two input items, the first with the id the
        suite pages ``after`` (the gateway answers 400 for an ``after`` that is no item of it)."""
        self._response(
            ITEMS_RESPONSE_ID,
            [
                {"type": "message", "role": "user", "content": "Say hello.", "id": "after"},
                {"type": "message", "role": "user", "content": "Then say goodbye."},
            ],
        )

    # --- stored chat completions -------------------------------------------------------------

    def stored_completion(self) -> None:
        """``completion_id``: a stored chat completion (retrieve, update, delete)."""
        now = time.time()
        # The chat.completion object in the shape the gateway stores its own (api/chat_store.py).
        doc = {
            "id": COMPLETION_ID,
            "object": "chat.completion",
            "created": int(now),
            "model": OPENAI_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
        row = completion_store.StoredCompletion(
            id=COMPLETION_ID,
            owner=self.owner,
            created_at=now,
            model=OPENAI_MODEL,
            metadata={"topic": "greeting"},
            messages=[{"role": "user", "content": "Say hello."}],
            completion=msgspec.json.encode(doc),
        )
        completion_store.remove(self.engine, COMPLETION_ID, self.owner)
        completion_store.insert(self.engine, row)

    def clear(self) -> None:
        """Every seeded object gone (the gateway's runner then has nothing of the seed's to take)."""
        for file_id in (FILE_ID, INPUT_FILE_ID):
            batch_store.delete_file(self.engine, file_id, self.owner)
        for batch_id in (BATCH_ID, MESSAGE_BATCH_ID):
            batch_store.delete_batch(self.engine, batch_id, self.owner)
        for response_id in (RESPONSE_ID, ITEMS_RESPONSE_ID):
            response_store.remove(self.engine, response_id, self.owner)
        completion_store.remove(self.engine, COMPLETION_ID, self.owner)


_CHAT = "tests/api_resources/chat/test_completions.py"
_FILES = "tests/api_resources/test_files.py"
_BATCHES = "tests/api_resources/test_batches.py"
_RESPONSES = "tests/api_resources/test_responses.py"
_INPUT_ITEMS = "tests/api_resources/responses/test_input_items.py"
_MESSAGE_BATCHES = "tests/api_resources/messages/test_batches.py"

#: (suite, file, fnmatch pattern of the test function's name) -> what to seed first.
PLAN: tuple[tuple[str, str, str, Callable[[Seeds], None]], ...] = (
    ("openai", _CHAT, "test_*_retrieve", Seeds.stored_completion),
    ("openai", _CHAT, "test_*_update", Seeds.stored_completion),
    ("openai", _CHAT, "test_*_delete", Seeds.stored_completion),
    ("openai", _FILES, "test_*_retrieve*", Seeds.user_file),  # retrieve, retrieve_content
    ("openai", _FILES, "test_*_delete", Seeds.user_file),
    ("openai", _BATCHES, "test_*_create*", Seeds.batch_input),
    ("openai", _BATCHES, "test_*_retrieve", Seeds.openai_batch),
    ("openai", _BATCHES, "test_*_cancel", Seeds.openai_batch),
    ("openai", _RESPONSES, "test_*_retrieve*", Seeds.stored_response),  # stream=True replays it
    ("openai", _RESPONSES, "test_*_cancel", Seeds.background_response),
    ("openai", _RESPONSES, "test_*_delete", Seeds.stored_response),
    ("openai", _INPUT_ITEMS, "test_*_list*", Seeds.items_response),
    ("anthropic", _MESSAGE_BATCHES, "test_*_retrieve*", Seeds.running_message_batch),
    ("anthropic", _MESSAGE_BATCHES, "test_*_cancel*", Seeds.running_message_batch),
    ("anthropic", _MESSAGE_BATCHES, "test_*_delete*", Seeds.ended_message_batch),
)

_seeds: Seeds | None = None


def seeds() -> Seeds:
    global _seeds
    if _seeds is None:
        _seeds = Seeds(make_engine(os.environ["SDK_SEED_DATABASE_URL"]), os.environ["SDK_SEED_OWNER"])
    return _seeds


def seed_for(suite: str, file: str, name: str) -> Callable[[Seeds], None] | None:
    function = name.partition("[")[0]
    for s, f, pattern, seed in PLAN:
        if s == suite and f == file and fnmatch.fnmatchcase(function, pattern):
            return seed
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    seed = seed_for(os.environ["SDK_SUITE"], item.nodeid.split("::", 1)[0], item.name)
    if seed is not None:
        seed(seeds())


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if seed_for(os.environ["SDK_SUITE"], item.nodeid.split("::", 1)[0], item.name) is not None:
        seeds().clear()


def pytest_sessionfinish() -> None:
    if _seeds is not None:
        _seeds.engine.dispose()
