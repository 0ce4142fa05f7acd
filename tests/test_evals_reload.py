"""``POST /admin/reload`` with an eval gate: a new policy is applied only if it passes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from switchpoint import config as config_mod
from switchpoint.api.app import create_app
from switchpoint.evals.reload_gate import reload_gate
from switchpoint.simulator import create_app as create_simulator
from test_evals_run import SUITE, gateway_doc

from servers import serve_in_thread


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with serve_in_thread(create_simulator()) as url:
        yield url


def _policy(sim: str, target: str) -> dict[str, Any]:
    doc = gateway_doc(sim)
    doc["models"]["bot"] = target
    return doc


def test_a_reload_with_a_gate_applies_only_a_config_that_passes(sim: str, tmp_path: Path) -> None:
    cfg_file = tmp_path / "gateway.yaml"
    cfg_file.write_text(yaml.safe_dump(_policy(sim, "d-base")))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "model": "bot", "repetitions": 1}))

    async def go() -> list[httpx.Response]:
        app = create_app(config_mod.load(cfg_file), reload_gate=reload_gate)
        out = []
        async with (
            app.router.lifespan_context(app),  # type: ignore[attr-defined]
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
        ):

            async def reload(target: str, body: Any) -> tuple[httpx.Response, str]:
                cfg_file.write_text(yaml.safe_dump(_policy(sim, target)))
                resp = await client.post("/admin/reload", json=body)
                return resp, str(app.gateway.config.aliases["bot"])

            for target in ("d-good", "d-bad"):
                resp, serving = await reload(target, {"gate": str(suite)})
                out.append(resp)
                out.append(httpx.Response(200, text=serving))
            resp, _ = await reload("d-bad", {"gate": str(tmp_path / "missing.yaml")})
            out.append(resp)
            resp, _ = await reload("d-bad", [1])
            out.append(resp)
        return out

    passed, after_pass, failed, after_fail, missing, bad_body = asyncio.run(go())
    assert passed.status_code == 200, passed.text
    assert passed.json()["gate"]["passed"] is True and "d-good" in after_pass.text
    assert failed.status_code == 409, failed.text
    body = failed.json()
    assert body["error"]["code"] == "gate_failed" and body["gate"]["passed"] is False
    assert "d-good" in after_fail.text  # the running policy keeps serving
    assert missing.status_code == 400 and "could not run" in missing.json()["error"]["message"]
    assert bad_body.status_code == 400
