"""The semantic cache: precision and the false-hit rate measured on a labelled set of 208 pairs
(tests/paraphrase_pairs.py, made for this project) with the bundled MiniLM, the default threshold
keeping false hits under 1%; the index bounded and scoped; through the gateway, a paraphrase in
the same scope gets the cached answer and the same question in another scope does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from governance_harness import configured_url_wins, doc, openai_body
from paraphrase_pairs import PAIRS
from resilience_harness import AUTH, Server, gateway, records
from switchpoint.config.cache import SemanticCacheSpec
from switchpoint.routing.embedder import default_embedder
from switchpoint.simulator import SimConfig
from switchpoint.simulator import create_app as create_sim

__all__ = ["configured_url_wins"]

np = pytest.importorskip("numpy")
EMBEDDER = default_embedder()
needs_model = pytest.mark.skipif(
    EMBEDDER is None, reason="the semantic extra (onnxruntime, the MiniLM package) is missing"
)


def _sims() -> Any:
    assert EMBEDDER is not None
    a = EMBEDDER.embed([p[0] for p in PAIRS])
    b = EMBEDDER.embed([p[1] for p in PAIRS])
    return (a * b).sum(axis=1)


@needs_model
def test_false_hits_stay_under_one_percent_at_the_default_threshold() -> None:
    from switchpoint.cache.semantic import SemanticIndex

    assert len(PAIRS) >= 200
    labels = np.array([p[2] for p in PAIRS])
    default = SemanticCacheSpec().threshold
    assert EMBEDDER is not None
    index = SemanticIndex(len(PAIRS))
    firsts = EMBEDDER.embed([p[0] for p in PAIRS])
    for i, vector in enumerate(firsts):
        index.add(i, vector, f"k{i}")  # each pair in a scope of its own
    seconds = EMBEDDER.embed([p[1] for p in PAIRS])
    hits = np.array([index.search(i, seconds[i], default) is not None for i in range(len(PAIRS))])
    sims = _sims()
    assert (hits == (sims >= default)).all()  # the index finds what the cosine says
    lines = ["threshold  false-hit rate  precision  recall"]
    for t in (0.85, 0.9, 0.93, 0.95, default):
        pred = sims >= t
        false_hits = int((pred & ~labels).sum())
        true_hits = int((pred & labels).sum())
        lines.append(
            f"{t:9.2f}  {false_hits / (~labels).sum():14.3f}  {true_hits / max(1, pred.sum()):9.3f}  "
            f"{true_hits / labels.sum():6.3f}"
        )
    print("\n" + "\n".join(lines))
    false_rate = (hits & ~labels).sum() / (~labels).sum()
    assert false_rate < 0.01
    assert (hits & labels).sum() > 0  # it does catch some paraphrases


def test_the_index_is_bounded_and_scoped() -> None:
    from switchpoint.cache.semantic import SemanticIndex

    index = SemanticIndex(3, dimension=2)
    v = np.array([1.0, 0.0], dtype=np.float32)
    w = np.array([0.0, 1.0], dtype=np.float32)
    index.add(1, v, "a")
    index.add(2, v, "b")
    assert index.search(1, v, 0.9) == ("a", pytest.approx(1.0))
    assert index.search(3, v, 0.9) is None  # another scope: nothing
    assert index.search(1, w, 0.5) is None  # under the threshold
    index.add(1, w, "c")
    index.add(1, w, "d")  # the fourth replaces the oldest ("a")
    assert len(index) == 3 and index.search(1, v, 0.9) is None
    assert index.search(1, w, 0.9) is not None


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with Server(create_sim(SimConfig())) as server:
        yield server.url


@needs_model
def test_a_paraphrase_hits_in_its_scope_only(sim: str, tmp_path: Path) -> None:
    section = {"semantic": {"enabled": True, "threshold": 0.9}}
    question, paraphrase = "How do I reset my password?", "What is the way to reset my password?"

    def body(text: str, system: str = "You are a support agent.") -> dict[str, Any]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        return dict(openai_body(model="fast", temperature=0), messages=messages)

    with (
        gateway(doc(sim, tmp_path, None, cache=section)) as (url, gw, _),
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        first = c.post("/v1/chat/completions", json=body(question), headers=AUTH)
        assert first.headers["x-switchpoint-cache"] == "miss"
        near = c.post("/v1/chat/completions", json=body(paraphrase), headers=AUTH)
        assert near.headers["x-switchpoint-cache"] == "hit" and near.content == first.content
        assert float(near.headers["x-switchpoint-cache-similarity"]) >= 0.9
        other = c.post("/v1/chat/completions", json=body(paraphrase, "You are a pirate."), headers=AUTH)
        assert other.headers["x-switchpoint-cache"] == "miss"  # another system prompt: another scope
        unrelated = c.post("/v1/chat/completions", json=body("How do I delete my account?"), headers=AUTH)
        assert unrelated.headers["x-switchpoint-cache"] == "miss"
        warm = c.post("/v1/chat/completions", json=openai_body("hot", model="fast"), headers=AUTH)
        assert warm.headers["x-switchpoint-cache"] == "bypass"  # not deterministic: never
        cache = gw.caches.response
        assert cache is not None and cache.semantic_hits == 1
        got = records(url, gw)
    assert sum(1 for r in got if r.cached) == 1
