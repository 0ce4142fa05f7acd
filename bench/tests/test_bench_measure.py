import asyncio
import math
from pathlib import Path

import measure
import pytest
from measure import Load


def test_parse_stat_handles_spaces_and_parens_in_command_name() -> None:
    line = "4242 (my (odd) proc) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 3 2 20 0 4 0 123 0 0\n"
    stat = measure.parse_stat(line)
    assert stat.pid == 4242
    assert stat.ppid == 17
    assert stat.ticks == 250 + 75 + 3 + 2


def test_parse_rss_kb_reads_vmrss_and_defaults_to_zero() -> None:
    status = "Name:\tpython\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n"
    assert measure.parse_rss_kb(status) == 51234
    assert measure.parse_rss_kb("Name:\tkthreadd\nThreads:\t1\n") == 0


def _fake_proc(root: Path, procs: dict[int, tuple[int, int, int]]) -> None:
    """pid -> (ppid, utime ticks, rss kB)."""
    for pid, (ppid, utime, rss) in procs.items():
        d = root / str(pid)
        d.mkdir()
        (d / "stat").write_text(f"{pid} (p {pid}) S {ppid} 1 1 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 1 0 0\n")
        (d / "status").write_text(f"Name:\tp\nVmRSS:\t{rss} kB\n")
    (root / "self").mkdir()


def test_tree_sums_root_and_all_descendants_only(tmp_path: Path) -> None:
    # 10 -> 11 -> 12, 10 -> 13; 20 is unrelated.
    _fake_proc(
        tmp_path, {10: (1, 100, 1000), 11: (10, 10, 200), 12: (11, 1, 30), 13: (10, 5, 4), 20: (1, 999, 9)}
    )
    stats = measure.all_stats(tmp_path)
    assert sorted(measure.tree_pids(10, stats)) == [10, 11, 12, 13]
    assert measure.tree_pids(99, stats) == []
    assert measure.tree_cpu_ms(10, tmp_path) == pytest.approx(116 * 1000 / measure.CLK_TCK)
    assert measure.tree_rss_kb(10, tmp_path) == 1234
    assert measure.tree_rss_kb(11, tmp_path) == 230


def test_tree_cpu_by_pid_covers_every_worker_of_a_multi_process_server(tmp_path: Path) -> None:
    # A supervisor (30) with two spawned workers and a resource tracker, as `serve --workers 2` runs.
    _fake_proc(
        tmp_path, {30: (1, 2, 50), 31: (30, 400, 60), 32: (30, 300, 60), 33: (30, 0, 10), 40: (1, 7, 1)}
    )
    by_pid = measure.tree_cpu_by_pid(30, tmp_path)
    assert sorted(by_pid) == [30, 31, 32, 33]
    assert by_pid[31] == pytest.approx(400 * 1000 / measure.CLK_TCK)
    assert measure.tree_cpu_ms(30, tmp_path) == pytest.approx(702 * 1000 / measure.CLK_TCK)
    assert measure.tree_rss_kb(30, tmp_path) == 180


def test_busy_processes_counts_those_that_shared_the_work() -> None:
    before = {30: 10.0, 31: 100.0, 32: 100.0, 33: 5.0}
    both = {30: 12.0, 31: 600.0, 32: 550.0, 33: 5.0}
    assert measure.busy_processes(before, both) == 2  # the supervisor's 2 ms is under 10 %
    one = {30: 12.0, 31: 1100.0, 32: 101.0, 33: 5.0}
    assert measure.busy_processes(before, one) == 1
    # A worker started between the samples counts from zero; one that exited is left out.
    assert measure.busy_processes({30: 1.0, 31: 100.0}, {30: 1.0, 34: 80.0}) == 1
    assert measure.busy_processes(before, before) == 0
    assert measure.busy_processes(before, both, share=0.5) == 1  # 500 of 952 ms
    assert measure.busy_processes(before, both, share=0.6) == 0


WRK_OUT = """Running 15s test @ http://127.0.0.1:4000
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.40ms    1.1ms   60.00ms   90.00%
  150000 requests in 15.00s, 60.00MB read
Requests/sec:  10000.00
BENCH_RESULT {"requests":150000,"duration_us":15000000,"bytes":62914560,"errors":{"connect":0,"read":1,"write":0,"status":3,"timeout":2},"latency_us":{"p50":5400,"p90":7000,"p99":12500,"max":60000,"mean":5512.3}}
"""


def test_parse_wrk_output_reads_the_summary_line() -> None:
    res = measure.parse_wrk_output(WRK_OUT)
    assert res.requests == 150000
    assert res.rps == pytest.approx(10000.0)
    assert (res.p50_ms, res.p90_ms, res.p99_ms, res.max_ms) == (5.4, 7.0, 12.5, 60.0)
    assert res.errors == {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 2}
    assert res.error_count == 6


def test_parse_wrk_output_without_summary_raises_with_the_output() -> None:
    with pytest.raises(measure.WrkError, match="unable to connect"):
        measure.parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_command_is_bounded_and_carries_the_target_settings() -> None:
    load = Load(4321, 64, 15.0, "1", "bench", {"Authorization": "Bearer k", "x-portkey-provider": "openai"})
    argv, env = measure.wrk_command(load, Path("/b/post.lua"))
    assert argv[:4] == ["wrk", "-t1", "-c64", "-d15s"]
    assert argv[-1] == "http://127.0.0.1:4321"
    assert env["BENCH_STREAM"] == "1"
    assert env["BENCH_MODEL"] == "bench"
    assert env["BENCH_HEADERS"].splitlines() == ["Authorization: Bearer k", "x-portkey-provider: openai"]


def test_percentile_nearest_rank_and_median() -> None:
    values = [float(v) for v in range(1, 101)]
    assert measure.percentile(values, 50) == 50.0
    assert measure.percentile(values, 99) == 99.0
    assert measure.percentile(values, 100) == 100.0
    assert measure.percentile([7.0], 99) == 7.0
    assert math.isnan(measure.percentile([], 50))
    assert measure.median([3.0, 1.0, 2.0]) == 2.0
    assert measure.median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_parse_head_lowercases_header_names() -> None:
    status, headers = measure.parse_head(
        b"HTTP/1.1 201 Created\r\nContent-Type: text/event-stream\r\nX-A: b\r\n\r\n"
    )
    assert status == 201
    assert headers == {"content-type": "text/event-stream", "x-a": "b"}


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_response_decodes_chunked_bodies_and_keeps_alive() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\ndata: \r\n"
        b"3;ext=1\r\nabc\r\n"
        b"0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"
    )
    reader = _reader(raw)
    resp = await measure.read_response(reader, started=0.0)
    assert resp.status == 200
    assert resp.body_bytes == 9
    assert resp.keep_alive
    assert 0 < resp.ttfb_s <= resp.ttlb_s
    assert await reader.read(8) == b"HTTP/1.1"  # the next response is left unread


async def test_read_response_content_length_and_connection_close() -> None:
    raw = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 5\r\nConnection: close\r\n\r\nerror"
    resp = await measure.read_response(_reader(raw), started=0.0)
    assert (resp.status, resp.body_bytes, resp.keep_alive) == (502, 5, False)


async def test_read_response_truncated_body_raises() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"
    with pytest.raises(asyncio.IncompleteReadError):
        await measure.read_response(_reader(raw), started=0.0)


def test_build_request_is_a_complete_post() -> None:
    load = Load(8787, 4, 1.0, "1", "gpt-4o-mini", {"x-portkey-custom-host": "http://127.0.0.1:1/v1"})
    raw = measure.build_request(load)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert f"Content-Length: {len(body)}" in lines
    assert "x-portkey-custom-host: http://127.0.0.1:1/v1" in lines
    assert b'"stream":true' in body and b'"model":"gpt-4o-mini"' in body
