import json
import shutil
from pathlib import Path

import pytest
import run
import targets


def test_parse_stub_status_reads_the_request_counter() -> None:
    page = "Active connections: 3 \nserver accepts handled requests\n 12 12 4567 \nReading: 0 Writing: 1 Waiting: 2 \n"
    assert targets.parse_stub_status(page) == 4567
    with pytest.raises(ValueError):
        targets.parse_stub_status("<html>not found</html>")


def test_clean_env_drops_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    env = targets.clean_env({"A": "1"})
    assert "HTTPS_PROXY" not in env and "http_proxy" not in env
    assert env["NO_PROXY"] == "127.0.0.1,localhost"
    assert env["A"] == "1"


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert targets.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert targets.log_tail(tmp_path / "missing.log") == "(no log)"


def test_configs_point_at_the_upstream_placeholder() -> None:
    for name in ("switchpoint.yaml", "litellm.yaml"):
        text = (targets.BENCH / "configs" / name).read_text()
        assert "http://127.0.0.1:${UPSTREAM_PORT}/v1" in text


def test_args_quick_and_target_selection() -> None:
    args = run.parse_args(["--quick", "--targets", "direct,portkey", "--connections", "32,2"])
    assert (args.duration, args.rounds) == (5.0, 1)
    assert args.target_list == ["direct", "portkey"]
    assert [s.name for s in run.scenarios(args.connection_list)] == [
        "plain c32",
        "plain c2",
        "stream c32",
        "stream c2",
    ]
    with pytest.raises(SystemExit):
        run.parse_args(["--targets", "direct,nope"])


def test_soak_defaults_to_ten_minutes() -> None:
    assert run.parse_args(["--soak"]).soak == 600.0
    assert run.parse_args(["--soak", "60"]).soak == 60.0
    assert run.parse_args([]).soak is None


def test_translate_and_workers_are_on_by_default_even_in_quick_runs() -> None:
    for argv in ([], ["--quick"], ["--targets", "direct,switchpoint"]):
        args = run.parse_args(argv)
        assert args.translate
        assert args.workers == 2
        assert args.workers_target == "switchpoint-w2"
    assert run.measured_targets(run.parse_args([])) == [
        "direct",
        "switchpoint",
        "switchpoint-w2",
        "litellm",
        "portkey",
    ]


def test_translate_and_workers_flags_and_targets_without_switchpoint() -> None:
    args = run.parse_args(["--no-translate", "--workers", "0", "--targets", "direct,switchpoint"])
    assert (args.translate, args.workers_target) == (False, None)
    assert run.measured_targets(args) == ["direct", "switchpoint"]
    args = run.parse_args(["--workers", "4"])
    assert args.workers_target == "switchpoint-w4"
    args = run.parse_args(["--targets", "direct,portkey"])
    assert (args.translate, args.workers_target) == (False, None)
    assert run.measured_targets(args) == ["direct", "portkey"]
    for bad in ("1", "-2"):
        with pytest.raises(SystemExit):
            run.parse_args(["--workers", bad])


def test_translate_scenarios_run_right_after_their_passthrough_ones() -> None:
    base = run.scenarios([64, 4])
    extra = run.translate_scenarios([64, 4])
    assert [s.name for s in extra] == [
        "translate plain c64",
        "translate plain c4",
        "translate stream c64",
        "translate stream c4",
    ]
    assert all(s.translate for s in extra) and not any(s.translate for s in base)
    assert [s.base for s in extra] == [s.name for s in base]
    assert [s.name for s in run.run_order(base, extra)] == [
        "plain c64",
        "translate plain c64",
        "plain c4",
        "translate plain c4",
        "stream c64",
        "translate stream c64",
        "stream c4",
        "translate stream c4",
    ]
    assert run.run_order(base, []) == base


def test_which_target_runs_which_scenario() -> None:
    translate4 = run.translate_scenarios([4])[0]
    assert [n for n in run.measured_targets(run.parse_args([])) if run.runs_on(translate4, n, 64)] == [
        "switchpoint"
    ]
    for scen in run.scenarios([64, 4]):
        for name in ("direct", "switchpoint", "litellm", "portkey", "switchpoint-w2"):
            assert run.runs_on(scen, name, 64)
    assert not run.runs_on(translate4, "switchpoint-w2", 64)


def test_switchpoint_worker_counts_from_target_names() -> None:
    assert targets.workers_target(2) == "switchpoint-w2"
    assert targets.switchpoint_workers("switchpoint") == 1
    assert targets.switchpoint_workers("switchpoint-w2") == 2
    assert targets.switchpoint_workers("switchpoint-w16") == 16
    for other in ("direct", "portkey", "switchpoint-w", "switchpoint-wx", "litellm-w2"):
        assert targets.switchpoint_workers(other) is None


def _translated_completion(**changes: object) -> bytes:
    body = {
        "id": targets.ANTHROPIC_MESSAGE_ID,
        "object": "chat.completion",
        "created": 1,
        "model": "claude-haiku-4-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": targets.UPSTREAM_REPLY},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 19, "total_tokens": 31},
    }
    return json.dumps(body | changes).encode()


def test_completion_problems_accepts_the_translated_answer_only() -> None:
    assert targets.completion_problems(_translated_completion(), targets.ANTHROPIC_MESSAGE_ID) == []
    # The OpenAI fixture is a fine completion, but not one that came through /v1/messages.
    openai = (targets.BENCH / "upstream" / "completion.json").read_bytes()
    assert targets.completion_problems(openai, "chatcmpl-bench") == []
    (problem,) = targets.completion_problems(openai, targets.ANTHROPIC_MESSAGE_ID)
    assert "expected 'msg_bench'" in problem
    anthropic = (targets.BENCH / "upstream" / "message.json").read_bytes()
    assert "not an OpenAI chat.completion" in targets.completion_problems(anthropic, "msg_bench")[0]
    cut = _translated_completion(
        choices=[{"message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "length"}]
    )
    assert len(targets.completion_problems(cut, targets.ANTHROPIC_MESSAGE_ID)) == 2
    assert targets.completion_problems(_translated_completion(usage={}), targets.ANTHROPIC_MESSAGE_ID)


def _chunk(content: str | None = None, finish: str | None = None, cid: str = "msg_bench") -> str:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "choices": [choice]}) + "\n\n"


def test_chat_stream_problems_checks_frames_text_finish_and_end() -> None:
    words = ["Hello!", " This is a fixed reply from the benchmark upstream,", " sent as a stream of chunks."]
    good = "".join(_chunk(w) for w in words) + _chunk(finish="stop") + "data: [DONE]\n\n"
    assert targets.chat_stream_problems(good, "msg_bench") == []
    passthrough = (targets.BENCH / "upstream" / "stream.sse").read_text()
    assert targets.chat_stream_problems(passthrough, "chatcmpl-bench") == []
    assert len(targets.chat_stream_problems(passthrough, "msg_bench")) == 21  # every chunk's id
    assert "[DONE]" in targets.chat_stream_problems(good.removesuffix("data: [DONE]\n\n"), "msg_bench")[0]
    short = _chunk(words[0]) + _chunk(finish="stop") + "data: [DONE]\n\n"
    assert "the deltas add up to 'Hello!'" in targets.chat_stream_problems(short, "msg_bench")[0]
    twice = "".join(_chunk(w, "stop") for w in words) + "data: [DONE]\n\n"
    assert targets.chat_stream_problems(twice, "msg_bench") == [
        "finish reasons ['stop', 'stop', 'stop'], expected one 'stop'"
    ]
    garbled = good.replace(_chunk(words[1]), "data: {oops\n\n")
    assert targets.chat_stream_problems(garbled, "msg_bench")[0] == "not JSON: '{oops'"


def test_the_baseline_runs_without_the_ledger_and_ledger_targets_replace_its_storage(tmp_path: Path) -> None:
    import yaml

    base = targets._render(targets.BENCH / "configs" / "switchpoint.yaml", 1234)
    assert yaml.safe_load(base.read_text())["storage"] == {"enabled": False}
    storage = "storage: {url: 'sqlite:///x/ledger.db'}"
    on = targets._render(targets.BENCH / "configs" / "switchpoint.yaml", 1234, storage, "switchpoint-ledger")
    assert on.name == "switchpoint-ledger.yaml"
    doc = yaml.safe_load(on.read_text())
    assert doc["storage"] == {"url": "sqlite:///x/ledger.db"}
    assert doc["models"]["bench"] == "bench-model"
    assert targets.switchpoint_workers("switchpoint-ledger") == 1
    for governed in targets.GOVERNED_TARGETS:  # the ledger on SQLite; Redis for the second
        assert targets.switchpoint_workers(governed) == 1
        gdoc = yaml.safe_load(
            targets._render(
                targets.BENCH / "configs" / "switchpoint.yaml",
                1234,
                targets.ledger_storage(governed),
                governed,
            ).read_text()
        )
        assert gdoc["storage"]["url"].startswith("sqlite:///") and governed in gdoc["storage"]["url"]
        assert ("state" in gdoc) == governed.endswith("-redis")
        shutil.rmtree(targets.WORK / governed, ignore_errors=True)
    assert (
        run.parse_args(
            ["--targets", "direct,switchpoint,switchpoint-ledger,switchpoint-ledger-pg"]
        ).target_list[-1]
        == "switchpoint-ledger-pg"
    )
