"""A simulated LLM provider speaking the OpenAI, Anthropic and Gemini wires.

It stands alone (it imports nothing else from switchpoint) so it can play the upstream in the
gateway's tests, demos and benchmarks. Base URLs: ``http://HOST:PORT/openai/v1``,
``http://HOST:PORT/anthropic`` and ``http://HOST:PORT/gemini/v1beta``.

Answers are deterministic and labelled (``[simulated <model>] …``). Faults and timing are
scripted with :class:`Behavior` fields: per model in :class:`SimConfig`, per request with
``x-sim-<field>`` headers (``x-sim-status: 429``, ``x-sim-retry-after-s: 2``), or with a
directive in the last user message, which passes through a gateway untouched::

    [[sim status=429 retry_after_s=2]]    [[sim ttft_ms=300 tokens_per_s=50]]
    [[sim cut_after=3]]    [[sim hang]]    [[sim malformed]]    [[sim stall_ms=500 stall_after=2]]

Precedence: header > directive > per-model > default. A bad directive is a 400 in the wire's
own error format.
"""

from .app import SimulatorApp, create_app
from .behavior import Behavior, SimConfig
from .server import run, serve, serving

__all__ = ["Behavior", "SimConfig", "SimulatorApp", "create_app", "run", "serve", "serving"]
