"""The semantic cache's index at size: one search over N entries (numpy, this process).

    python bench/semantic_index.py            # 100,000 entries, 384 dimensions
    python bench/semantic_index.py --entries 10000 --scopes 100

Fills a :class:`switchpoint.cache.semantic.SemanticIndex` with random unit vectors spread over
``--scopes`` scopes and times searches (median and p99 of 200, after 20 to warm up). The
embedding of the question (MiniLM on onnxruntime, one thread) is timed apart: it is the larger
cost of a semantic lookup. See docs/caching.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from switchpoint.cache.semantic import DIMENSION, SemanticIndex
from switchpoint.routing.embedder import default_embedder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--scopes", type=int, default=1, help="scopes the entries spread over (1: all in one)")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    index = SemanticIndex(args.entries)
    vectors = rng.standard_normal((args.entries, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i, v in enumerate(vectors):
        index.add(i % args.scopes, v, f"k{i}")
    query = vectors[7]
    times = []
    for n in range(220):
        t0 = time.perf_counter()
        index.search(7 % args.scopes, query, 0.97)
        if n >= 20:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(
        f"index: {args.entries:,} entries, {args.scopes} scope(s): search median "
        f"{statistics.median(times) * 1e3:.2f} ms, p99 {times[int(len(times) * 0.99) - 1] * 1e3:.2f} ms, "
        f"{index._vectors.nbytes / 2**20:.0f} MiB of vectors"
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
