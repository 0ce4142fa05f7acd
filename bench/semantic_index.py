"""The semantic cache's index at size: one search over N entries (numpy, this process).

    python bench/semantic_index.py                      # 100,000 entries in one scope
    python bench/semantic_index.py --scopes 1000        # the same spread over 1,000 scopes
    python bench/semantic_index.py --data topics        # clustered: many rows near each query
    python bench/semantic_index.py --no-prune           # the full product in every scope

Fills a :class:`switchpoint.cache.semantic.SemanticIndex` with unit vectors spread over
``--scopes`` scopes and times searches for near copies of stored rows (median and p99 of 200
after 20 to warm up, in the least disturbed of ``--rounds`` rounds; the CPU time of the searching
thread, numpy's BLAS held to one thread, unless ``--clock wall``; the first search of a large scope fits its pruning basis and is not
timed). ``--data random``: isotropic vectors; ``--data topics``: 1,000 topic centres, each row
at a cosine of about 0.75 from its centre (rows of one topic about 0.55 apart), the harder case
for the pruning bound. The embedding of the question (MiniLM on onnxruntime, one thread) is
timed apart: it is the larger cost of a semantic lookup. See docs/caching.md.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread: a search's CPU is this thread's (numpy reads it once)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from switchpoint.cache import semantic  # noqa: E402
from switchpoint.cache.semantic import DIMENSION, SemanticIndex  # noqa: E402
from switchpoint.routing.embedder import default_embedder  # noqa: E402


def _unit(x: Any) -> Any:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _data(kind: str, n: int, rng: Any) -> Any:
    noise = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    if kind == "random":
        return _unit(noise)
    centres = _unit(rng.standard_normal((1000, DIMENSION)))
    return _unit(centres[rng.integers(0, 1000, n)] + 0.88 * _unit(noise))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--scopes", type=int, default=1, help="scopes the entries spread over (1: all in one)")
    p.add_argument("--data", choices=("random", "topics"), default="random")
    p.add_argument("--threshold", type=float, default=0.97)
    p.add_argument("--rounds", type=int, default=5, help="rounds of 200 searches (the best is shown)")
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="this thread's CPU time (default: steady on a busy machine) or wall time",
    )
    p.add_argument("--no-prune", action="store_true", help="search every scope by the full product")
    args = p.parse_args()
    if args.no_prune:
        semantic.PRUNE_AT = 1 << 62
    rng = np.random.default_rng(0)
    index = SemanticIndex(args.entries)
    vectors = _data(args.data, args.entries, rng)
    for i, v in enumerate(vectors):
        index.add(i % args.scopes, v, f"k{i}")
    picks = rng.integers(0, args.entries, 220)
    queries = _unit(vectors[picks] + 0.2 * _unit(rng.standard_normal((220, DIMENSION))))  # cos ~0.98
    for scope in {int(i) % args.scopes for i in picks}:
        index.search(scope, queries[0], args.threshold)  # fits the large scopes' bases
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    rounds = []
    for _ in range(args.rounds):
        times, hits = [], 0
        for n, (i, q) in enumerate(zip(picks, queries, strict=True)):
            t0 = clock()
            found = index.search(int(i) % args.scopes, q, args.threshold)
            if n >= 20:
                times.append(clock() - t0)
                hits += found is not None
        times.sort()
        rounds.append((statistics.median(times), times[int(len(times) * 0.99) - 1], hits, len(times)))
    median, p99, hits, n = min(rounds)  # the least disturbed round (a shared machine)
    print(
        f"index: {args.entries:,} entries ({args.data}), {args.scopes} scope(s), "
        f"{'full product' if args.no_prune else 'pruned'}: search median {median * 1e3:.2f} ms {args.clock}, "
        f"p99 {p99 * 1e3:.2f} ms (best of {args.rounds} rounds; medians "
        f"{', '.join(f'{r[0] * 1e3:.2f}' for r in rounds)}), {hits}/{n} found at {args.threshold}, "
        f"{index.nbytes() / 2**20:.0f} MiB of arrays"
    )
    embedder = default_embedder()
    if embedder is not None:
        embedder.embed(["warm up"])
        t = []
        for _ in range(50):
            t0 = time.perf_counter()
            embedder.embed(["How do I reset my password on the website?"])
            t.append(time.perf_counter() - t0)
        print(f"embedding one question: median {statistics.median(t) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
