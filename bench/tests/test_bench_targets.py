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
