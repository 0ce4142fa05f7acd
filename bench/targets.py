"""Targets under benchmark: installing them, starting them, checking they answer, stopping them."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WORK = BENCH / ".work"
LOGS = WORK / "logs"

MASTER_KEY = "sk-bench-master-key"
UPSTREAM_KEY = "sk-bench-upstream-key"
GATEWAYS = ("switchpoint", "litellm", "portkey")
ALL_TARGETS = ("direct", *GATEWAYS)
#: switchpoint with its ledger on: a SQLite file in bench/.work, a PostgreSQL schema of its own
#: (``switchpoint`` itself runs with the ledger off: their baseline). Asked for by name only.
LEDGER_TARGETS = ("switchpoint-ledger", "switchpoint-ledger-pg")
#: switchpoint governed: the ledger on SQLite as ``switchpoint-ledger`` (their baseline), every
#: request made with a virtual key with RPM, TPM and a daily budget (:data:`LIMITED_KEY`), the
#: governance state in memory, or in Redis (``BENCH_REDIS_URL``) under a prefix of the run's own,
#: removed after. Asked for by name only.
GOVERNED_TARGETS = ("switchpoint-governed", "switchpoint-governed-redis")
KNOWN_TARGETS = (*ALL_TARGETS, *LEDGER_TARGETS, *GOVERNED_TARGETS)
#: A key's limits and budget far above what a run uses: every request is admitted, reserved
#: and settled, none refused.
LIMITED_KEY: dict[str, object] = {
    "limits": {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000},
    "budgets": {"daily": 1e9},
}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: The Redis prefix of ``switchpoint-governed-redis`` in this run.
REDIS_PREFIX = f"bench-governed-{os.getpid()}:"
#: The PostgreSQL of ``switchpoint-ledger-pg`` (the machine's test server) and its schema,
#: dropped and made again at each start, dropped at the end of the run.
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "bench_ledger"
#: switchpoint's alias for the Anthropic-family provider (bench/configs/switchpoint.yaml).
TRANSLATE_MODEL = "bench-translate"
NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
APT_PACKAGES = ("nginx-light", "libnginx-mod-http-js", "wrk")
PORTKEY_SERVER = "node_modules/@portkey-ai/gateway/build/start-server.js"


class TargetFailed(RuntimeError):
    pass


# --- tools and peers ------------------------------------------------------------------------


def _run(argv: list[str], **kw: object) -> None:
    print("  $", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]


def ensure_tools() -> None:
    """nginx with njs, and wrk, from Debian's packages (installed once)."""
    if shutil.which("nginx") and shutil.which("wrk") and NJS_MODULE.exists():
        return
    if os.geteuid() != 0:
        raise SystemExit(f"nginx, njs and wrk are missing; run: apt-get install {' '.join(APT_PACKAGES)}")
    print("installing nginx, njs and wrk from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env)
    # Keep the package scripts from starting a system nginx on port 80.
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES], env=env)
    finally:
        if added_policy:
            policy.unlink()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interpreter_tag(python: Path) -> str:
    """A short name for an interpreter: its resolved path and version, hashed."""
    res = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    )
    key = f"{python.resolve()}|{res.stdout.strip()}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def interpreter(python: Path | None) -> dict[str, str]:
    """What the Python gateways run on: version, path, and whether the interpreter is linked to
    libpython as a shared library (every call inside the interpreter then goes through the PLT:
    such builds, pyenv's default among them, run Python code measurably slower)."""
    exe = python or REPO / ".venv" / "bin" / "python"
    code = (
        "import sys; print(sys.version.split()[0]); print(sys.executable); "
        "print('shared' if any('libpython' in line for line in open('/proc/self/maps')) else 'static')"
    )
    try:
        res = subprocess.run([str(exe), "-c", code], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return {"path": str(exe)}
    version, path, libpython = [*res.stdout.splitlines(), "", "", ""][:3]
    return {"version": version, "path": path, "libpython": libpython}


def switchpoint_venv_path(python: Path | None) -> Path:
    return REPO / ".venv" if python is None else WORK / f"switchpoint-venv-{interpreter_tag(python)}"


def switchpoint_venv(python: Path | None) -> Path:
    """The venv switchpoint runs from: the project's ``.venv``, or one made from ``python``
    with the project installed (editable, so it runs this checkout's code), once."""
    venv = switchpoint_venv_path(python)
    if python is None:
        return venv
    marker = venv / ".bench-installed"
    if (
        (venv / "bin" / "switchpoint").exists()
        and marker.exists()
        and marker.read_text() == _digest(REPO / "pyproject.toml")
    ):
        return venv
    print(f"installing switchpoint into {venv} (on {python})", flush=True)
    _run([str(python), "-m", "venv", "--clear", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-e", str(REPO)])
    marker.write_text(_digest(REPO / "pyproject.toml"))
    return venv


def litellm_venv(python: Path | None) -> Path:
    return WORK / ("litellm-venv" if python is None else f"litellm-venv-{interpreter_tag(python)}")


def ensure_litellm(python: Path | None = None) -> Path:
    """LiteLLM's proxy in its own venv from the frozen requirement set; returns its ``litellm``.
    ``python``: the interpreter to make the venv from (default: the one running the bench)."""
    venv = litellm_venv(python)
    req = BENCH / "peers" / "litellm-proxy-requirements.txt"
    marker = venv / ".bench-installed"
    exe = venv / "bin" / "litellm"
    if exe.exists() and marker.exists() and marker.read_text() == _digest(req):
        return exe
    print("installing LiteLLM into", venv, flush=True)
    _run([str(python or sys.executable), "-m", "venv", "--clear", str(venv)])
    pip = str(venv / "bin" / "pip")
    _run([pip, "install", "-q", "--disable-pip-version-check", "--no-deps", "-r", str(req)])
    marker.write_text(_digest(req))
    return exe


def ensure_portkey() -> Path:
    """Portkey's gateway in its own npm dir, with the pinned overrides; returns its directory."""
    home = WORK / "portkey"
    pkg = BENCH / "peers" / "portkey-package.json"
    marker = home / ".bench-installed"
    if (home / PORTKEY_SERVER).exists() and marker.exists() and marker.read_text() == _digest(pkg):
        return home
    print("installing Portkey into", home, flush=True)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pkg, home / "package.json")
    _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=home)
    marker.write_text(_digest(pkg))
    return home


def versions(python: Path | None = None) -> dict[str, str]:
    """Versions of what this run measured (best effort)."""
    out: dict[str, str] = {"python": interpreter(python).get("version", "?")}

    def cmd(key: str, argv: list[str], pick: int | None = None) -> None:
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            return
        text = (res.stdout + res.stderr).strip().splitlines()
        if text:
            first = text[0].strip()
            out[key] = first.split()[pick] if pick is not None and len(first.split()) > pick else first

    cmd("nginx", ["nginx", "-v"], pick=2)
    cmd("wrk", ["wrk", "-v"], pick=1)
    cmd("node", ["node", "--version"])
    lite = litellm_venv(python) / "bin" / "python"
    if lite.exists():
        cmd("litellm", [str(lite), "-c", "import importlib.metadata as m; print(m.version('litellm'))"])
    pk = WORK / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
    if pk.exists():
        cmd("portkey", ["node", "-p", f"require({str(pk)!r}).version"])
    sp = switchpoint_venv_path(python) / "bin" / "python"
    if sp.exists():
        cmd("switchpoint", [str(sp), "-c", "import importlib.metadata as m; print(m.version('switchpoint'))"])
    return out


def machine() -> dict[str, str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": os.uname().release,
    }


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment less any proxy settings (all traffic here is loopback)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Processes:
    """Every process the benchmark starts, each in its own process group, stopped in reverse order."""

    def __init__(self) -> None:
        self._running: list[Running] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Running:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        run = Running(name, proc, log)
        self._running.append(run)
        return run

    def stop(self, run: Running, grace_s: float = 5.0) -> None:
        if run in self._running:
            self._running.remove(run)
        pgid = run.proc.pid  # start_new_session: the group id is the leader's pid
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.05)
                run.proc.poll()
            if not _group_alive(pgid):
                break
        run.proc.poll()

    def stop_all(self) -> None:
        for run in reversed(list(self._running)):
            self.stop(run)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left (the leader not yet reaped) count as gone.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


# --- the fake upstream ----------------------------------------------------------------------


def start_upstream(procs: Processes, port: int) -> Running:
    work = WORK / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(nginx_conf(work, port))
    return procs.spawn("nginx", ["nginx", "-p", str(work), "-c", str(conf)], clean_env({}), work)


def nginx_conf(work: Path, port: int) -> str:
    """bench/upstream/nginx.conf.template with its {placeholders} filled in."""
    template = (BENCH / "upstream" / "nginx.conf.template").read_text()
    values = {
        "njs_module": str(NJS_MODULE),
        "work": str(work),
        "upstream_dir": str(BENCH / "upstream"),
        "port": str(port),
    }
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


# --- gateways -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """How clients reach a target."""

    name: str
    port: int
    model: str
    headers: dict[str, str] = field(default_factory=dict)


def direct_endpoint(upstream_port: int) -> Endpoint:
    return Endpoint("direct", upstream_port, "gpt-4o-mini", {"Authorization": f"Bearer {UPSTREAM_KEY}"})


def _render(template: Path, upstream_port: int, storage: str | None = None, name: str | None = None) -> Path:
    """The config with the upstream's port filled in; ``storage`` replaces its ``storage:`` line
    (written as ``<name>.yaml`` then)."""
    out = WORK / "configs" / (f"{name}.yaml" if name else template.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = template.read_text().replace("${UPSTREAM_PORT}", str(upstream_port))
    if storage is not None:
        lines = [line for line in text.splitlines() if not line.startswith("storage:")]
        text = "\n".join([*lines, storage]) + "\n"
    out.write_text(text)
    return out


def _pg(sql: str) -> None:
    """Run one statement on the bench's PostgreSQL (with the project's psycopg)."""
    code = (
        "import psycopg, sys\nwith psycopg.connect(sys.argv[1], autocommit=True) as c: c.execute(sys.argv[2])"
    )
    python = REPO / ".venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", code, PG_URL, sql], capture_output=True, text=True)
    if done.returncode != 0:
        raise TargetFailed(f"PostgreSQL at {PG_URL}: {done.stderr.strip().splitlines()[-1:]}")


def ledger_storage(name: str) -> str | None:
    """The ``storage:`` line of a ledger target, its database made empty; None for the others."""
    if name == "switchpoint-ledger" or name in GOVERNED_TARGETS:
        d = WORK / ("ledger-sqlite" if name == "switchpoint-ledger" else name)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        storage = f"storage: {{url: 'sqlite:///{d}/ledger.db', spill_path: '{d}/spill.jsonl'}}"
        if name == "switchpoint-governed-redis":
            storage += f"\nstate: {{redis_url: '{REDIS_URL}', prefix: '{REDIS_PREFIX}'}}"
        return storage
    if name == "switchpoint-ledger-pg":
        d = WORK / "ledger-pg"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        _pg(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        _pg(f"CREATE SCHEMA {PG_SCHEMA}")
        sep = "&" if "?" in PG_URL else "?"
        return f"storage: {{url: '{PG_URL}{sep}options=-csearch_path%3D{PG_SCHEMA}', spill_path: '{d}/spill.jsonl'}}"
    return None


def drop_redis_prefix(prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (with the project's redis-py)."""
    code = (
        "import redis, sys\nc = redis.Redis.from_url(sys.argv[1])\n"
        "keys = list(c.scan_iter(match=sys.argv[2] + '*'))\nkeys and c.delete(*keys)\nc.close()"
    )
    python = REPO / ".venv" / "bin" / "python"
    subprocess.run([str(python), "-c", code, REDIS_URL, prefix], capture_output=True, check=False)


def virtual_key(port: int, fields: dict[str, object] | None = None) -> str:
    """A virtual key made on the running gateway with the master key; its secret."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            "/admin/keys",
            body=json.dumps({"name": "bench", **(fields or {})}),
            headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 201:
        raise TargetFailed(f"POST /admin/keys answered {resp.status}: {body[:300]!r}")
    return str(json.loads(body)["secret"])


def governed_endpoint(ep: Endpoint) -> Endpoint:
    """``ep`` (a governed target, running) called with a limited virtual key made on it."""
    secret = virtual_key(ep.port, LIMITED_KEY)
    return Endpoint(ep.name, ep.port, ep.model, {"Authorization": f"Bearer {secret}"})


def drop_ledgers() -> None:
    """Remove what the ledger targets wrote (their SQLite file, their PostgreSQL schema)."""
    for d in ("ledger-sqlite", *GOVERNED_TARGETS):
        shutil.rmtree(WORK / d, ignore_errors=True)
    drop_redis_prefix(REDIS_PREFIX)
    shutil.rmtree(WORK / "ledger-pg", ignore_errors=True)
    try:
        _pg(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    except (TargetFailed, OSError):
        pass


def workers_target(workers: int) -> str:
    """Name of the extra switchpoint target started with ``--workers N``."""
    return f"switchpoint-w{workers}"


def switchpoint_workers(name: str) -> int | None:
    """Worker processes of a switchpoint target (``switchpoint`` 1, ``switchpoint-wN`` N); None otherwise."""
    if name == "switchpoint" or name in LEDGER_TARGETS or name in GOVERNED_TARGETS:
        return 1
    prefix = workers_target(0)[:-1]
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


def launch(
    procs: Processes, name: str, upstream_port: int, python: Path | None = None
) -> tuple[Running, Endpoint]:
    """Install (if needed) and start one gateway; returns its process and endpoint. ``python``:
    the interpreter switchpoint and LiteLLM run on (default: ``.venv``'s and the bench's)."""
    port = free_port()
    bearer = {"Authorization": f"Bearer {MASTER_KEY}"}
    workers = switchpoint_workers(name)
    if workers is not None:
        exe = switchpoint_venv(python) / "bin" / "switchpoint"
        if not exe.exists():
            raise TargetFailed(f"switchpoint: {exe} not found (install the project into .venv first)")
        storage = ledger_storage(name)
        cfg = _render(
            BENCH / "configs" / "switchpoint.yaml", upstream_port, storage, name if storage else None
        )
        env = clean_env({"SWITCHPOINT_MASTER_KEY": MASTER_KEY, "BENCH_UPSTREAM_KEY": UPSTREAM_KEY})
        env.pop("SWITCHPOINT_DATABASE_URL", None)  # the config says where the ledger is (or that it is off)
        argv = [str(exe), "serve", "--config", str(cfg), "--port", str(port)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        return procs.spawn(name, argv, env, REPO), Endpoint(name, port, "bench", bearer)
    if name == "litellm":
        exe = ensure_litellm(python)
        cfg = _render(BENCH / "configs" / "litellm.yaml", upstream_port)
        env = clean_env(
            {
                "LITELLM_MASTER_KEY": MASTER_KEY,
                "BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
                "LITELLM_LOG": "ERROR",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "DISABLE_ADMIN_UI": "True",
            }
        )
        argv = [
            str(exe),
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        return procs.spawn(name, argv, env, WORK), Endpoint(name, port, "bench", bearer)
    if name == "portkey":
        home = ensure_portkey()
        preload = BENCH / "peers" / "portkey-loopback.cjs"
        argv = ["node", "--require", str(preload), PORTKEY_SERVER, f"--port={port}", "--headless"]
        headers = {
            "Authorization": f"Bearer {UPSTREAM_KEY}",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1",
        }
        return procs.spawn(name, argv, clean_env({}), home), Endpoint(name, port, "gpt-4o-mini", headers)
    raise TargetFailed(f"unknown target {name!r}")


# --- readiness ------------------------------------------------------------------------------


def post(ep: Endpoint, stream: bool, timeout_s: float = 10.0) -> tuple[int, bytes]:
    body = (
        f'{{"model":"{ep.model}","messages":[{{"role":"user","content":"Say hello."}}],'
        f'"max_tokens":32,"stream":{"true" if stream else "false"}}}'
    )
    conn = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=timeout_s)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=body,
            headers={"Content-Type": "application/json", **ep.headers},
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


UPSTREAM_TEXT = "fixed reply from the benchmark upstream"
#: The whole answer of every fixture in bench/upstream/ (OpenAI and Anthropic, plain and streamed).
UPSTREAM_REPLY = "Hello! This is a fixed reply from the benchmark upstream, sent as a stream of chunks."
#: The id of the fake Anthropic message (message.json, messages.sse); a translated answer keeps it,
#: which shows it came through POST /v1/messages and not the OpenAI endpoint.
ANTHROPIC_MESSAGE_ID = "msg_bench"


def upstream_requests(port: int) -> int:
    """Requests nginx has served so far (from its stub_status page)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/_bench_status")
        return parse_stub_status(conn.getresponse().read().decode())
    finally:
        conn.close()


def parse_stub_status(text: str) -> int:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("server accepts handled requests"):
            return int(lines[i + 1].split()[2])
    raise ValueError(f"not an nginx stub_status page: {text[:200]!r}")


def wait_ready(run: Running, ep: Endpoint, timeout_s: float) -> None:
    """Poll with a real completion until it answers 200, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        code = run.proc.poll()
        if code is not None:
            raise TargetFailed(f"{ep.name} exited with code {code} while starting\n{_tail(run)}")
        try:
            status, body = post(ep, stream=False, timeout_s=5.0)
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and UPSTREAM_TEXT in body.decode(errors="replace"):
                return
            if status == 200:
                raise TargetFailed(f"{ep.name}: the answer did not come from the upstream: {body[:300]!r}")
            last = f"HTTP {status}: {body[:300].decode(errors='replace')}"
        time.sleep(0.5)
    raise TargetFailed(f"{ep.name} did not become ready in {timeout_s:g} s (last: {last})\n{_tail(run)}")


def check_stream(ep: Endpoint) -> int:
    """One streamed completion must answer 200 and end with ``[DONE]``; returns its data frame count."""
    status, body = post(ep, stream=True)
    text = body.decode(errors="replace")
    if status != 200 or "[DONE]" not in text or " benchmark" not in text:
        raise TargetFailed(f"{ep.name}: streaming check failed: HTTP {status}: {text[:500]}")
    return sum(1 for line in text.splitlines() if line.startswith("data:"))


def completion_problems(body: bytes, want_id: str) -> list[str]:
    """What is wrong with ``body`` as an OpenAI ``chat.completion`` carrying the upstream's reply."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        usage = data["usage"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [f"not an OpenAI chat.completion ({type(exc).__name__}: {exc}): {body[:300]!r}"]
    problems = []
    if data.get("object") != "chat.completion":
        problems.append(f"object is {data.get('object')!r}, expected 'chat.completion'")
    if data.get("id") != want_id:
        problems.append(f"id is {data.get('id')!r}, expected {want_id!r} (the upstream's)")
    message = choice.get("message") or {}
    if message.get("role") != "assistant" or message.get("content") != UPSTREAM_REPLY:
        problems.append(f"message is {message!r}, expected the assistant's {UPSTREAM_REPLY!r}")
    if choice.get("finish_reason") != "stop":
        problems.append(f"finish_reason is {choice.get('finish_reason')!r}, expected 'stop'")
    if not isinstance(usage, dict) or not usage.get("completion_tokens"):
        problems.append(f"usage is {usage!r}, expected the upstream's token counts")
    return problems


def chat_stream_problems(text: str, want_id: str) -> list[str]:
    """What is wrong with ``text`` as an OpenAI chat stream carrying the upstream's reply."""
    frames = [line[len("data:") :].strip() for line in text.splitlines() if line.startswith("data:")]
    if not frames or frames[-1] != "[DONE]":
        return [f"the stream does not end with data: [DONE]: {text[-300:]!r}"]
    problems: list[str] = []
    content: list[str] = []
    finishes: list[str] = []
    for frame in frames[:-1]:
        try:
            chunk = json.loads(frame)
        except ValueError:
            problems.append(f"not JSON: {frame[:200]!r}")
            continue
        if chunk.get("object") != "chat.completion.chunk" or chunk.get("id") != want_id:
            problems.append(f"not a chat.completion.chunk with id {want_id!r}: {frame[:200]!r}")
        for choice in chunk.get("choices") or ():
            content.append((choice.get("delta") or {}).get("content") or "")
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    if "".join(content) != UPSTREAM_REPLY:
        problems.append(f"the deltas add up to {''.join(content)!r}, expected {UPSTREAM_REPLY!r}")
    if finishes != ["stop"]:
        problems.append(f"finish reasons {finishes!r}, expected one 'stop'")
    return problems


def check_translation(ep: Endpoint) -> int:
    """``ep`` (an OpenAI-dialect alias of an Anthropic-family provider) must answer a plain and a
    streamed completion in OpenAI's shape with the Anthropic upstream's reply; returns the
    stream's data frame count."""
    status, body = post(ep, stream=False)
    problems = completion_problems(body, ANTHROPIC_MESSAGE_ID) if status == 200 else [f"HTTP {status}"]
    if problems:
        raise TargetFailed(f"{ep.name} ({ep.model}): translation check failed: {'; '.join(problems)}")
    status, body = post(ep, stream=True)
    text = body.decode(errors="replace")
    problems = chat_stream_problems(text, ANTHROPIC_MESSAGE_ID) if status == 200 else [f"HTTP {status}"]
    if problems:
        raise TargetFailed(
            f"{ep.name} ({ep.model}): streamed translation check failed: {'; '.join(problems)}"
        )
    return sum(1 for line in text.splitlines() if line.startswith("data:"))


def _tail(run: Running) -> str:
    return f"--- last lines of {run.log} ---\n{log_tail(run.log)}"
