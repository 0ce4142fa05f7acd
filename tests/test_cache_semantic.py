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


def _brute(
    live: list[tuple[int, Any, str]], scope: int, q: Any, threshold: float
) -> tuple[str, float] | None:
    mine = [(v, k) for s, v, k in live if s == scope]
    if not mine:
        return None
    sims = np.stack([v for v, _ in mine]) @ q
    best = int(np.argmax(sims))
    return (mine[best][1], float(sims[best])) if sims[best] >= threshold else None


def _same(got: tuple[str, float] | None, want: tuple[str, float] | None) -> bool:
    if got is None or want is None:
        return got is want
    return got[0] == want[0] and got[1] == pytest.approx(want[1], abs=1e-5)


def test_a_large_scope_is_searched_exactly() -> None:
    """Past PRUNE_AT rows a scope is searched through its bound; it finds exactly what the full
    product finds, while rows leave from the front, the arrays are compacted and doubled, and the
    basis is fitted again."""
    from switchpoint.cache.semantic import PRUNE_AT, SemanticIndex

    rng = np.random.default_rng(7)
    capacity = 3 * PRUNE_AT
    index = SemanticIndex(capacity, dimension=48)
    # low-rank data with noise: a basis fitted on it bounds tightly, as on real embeddings
    mix = rng.standard_normal((12, 48)).astype(np.float32)

    def unit(n: int) -> Any:
        x = rng.standard_normal((n, 12)).astype(np.float32) @ mix
        x += 0.3 * rng.standard_normal((n, 48)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    live: list[tuple[int, Any, str]] = []
    vectors = unit(4 * capacity)
    for i, v in enumerate(vectors):
        scope = 1 if i % 5 else 2
        index.add(scope, v, f"{scope}-{i}")
        live.append((scope, v, f"{scope}-{i}"))
        live = live[-capacity:]
        if i % 1500 == 1499:
            for q in [live[j][1] + 0.05 * unit(1)[0] for j in rng.integers(0, len(live), 8)]:
                q = (q / np.linalg.norm(q)).astype(np.float32)
                for t in (0.97, 0.9, 0.5):
                    for scope in (1, 2):
                        assert _same(index.search(scope, q, t), _brute(live, scope, q, t))
    assert len(index) == capacity


@needs_model
def test_pruned_search_on_real_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    from switchpoint.cache import semantic

    monkeypatch.setattr(semantic, "PRUNE_AT", 32)
    assert EMBEDDER is not None
    firsts = EMBEDDER.embed([p[0] for p in PAIRS])
    seconds = EMBEDDER.embed([p[1] for p in PAIRS])
    index = semantic.SemanticIndex(len(PAIRS))
    live = [(0, v, f"k{i}") for i, v in enumerate(firsts)]
    for scope, v, key in live:
        index.add(scope, v, key)
    for t in (0.97, 0.9, 0.8):
        for q in seconds:
            assert _same(index.search(0, q, t), _brute(live, 0, q, t))


def test_searches_in_threads_while_rows_are_added() -> None:
    """A search holds the lock; an add that finds it held is queued, never lost, never mixed
    into another scope."""
    import threading

    from switchpoint.cache.semantic import SemanticIndex

    rng = np.random.default_rng(3)
    index = SemanticIndex(5000, dimension=32)
    stop = threading.Event()
    wrong: list[str] = []

    def searcher(scope: int) -> None:
        while not stop.is_set():
            q = rng.standard_normal(32).astype(np.float32)
            found = index.search(scope, q / np.linalg.norm(q), -1.0)
            if found is not None and not found[0].startswith(f"{scope}-"):
                wrong.append(found[0])

    threads = [threading.Thread(target=searcher, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    try:
        for i in range(20_000):
            v = rng.standard_normal(32).astype(np.float32)
            index.add(1 + i % 3, v / np.linalg.norm(v), f"{1 + i % 3}-{i}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not wrong
    assert len(index) == 5000
    v = np.ones(32, dtype=np.float32) / np.sqrt(32)
    index.add(3, v, "3-last")
    assert index.search(3, v, 0.99) == ("3-last", pytest.approx(1.0))


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
