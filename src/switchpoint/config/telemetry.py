"""The ``telemetry:`` section: OpenTelemetry traces exported over OTLP/HTTP (docs/observability.md).

Traces are on when ``otlp_endpoint`` is set. They need the ``otel`` extra
(``pip install 'switchpoint[otel]'``); a config that asks for them without it is refused up
front, with that command in the message, so ``check-config`` says so too.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import msgspec

from switchpoint.config.base import Secret, _Base

#: The Python modules the ``otel`` extra brings.
OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


class TelemetrySpec(_Base):
    #: The OTLP/HTTP traces endpoint (``http://collector:4318/v1/traces``); unset = no traces.
    otlp_endpoint: str | None = None
    #: ``service.name`` of the spans' resource.
    service_name: str = "switchpoint"
    #: Share of requests traced (0 to 1), a random draw per request (a traced request keeps all its spans).
    sample_ratio: float = 1.0
    #: Headers sent with every export; values may be ``env:NAME`` references (tokens).
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: Seconds one export may take before it is given up.
    export_timeout_s: float = 10.0


class Telemetry(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved section: traces go to ``otlp_endpoint``."""

    otlp_endpoint: str
    service_name: str = "switchpoint"
    sample_ratio: float = 1.0
    headers: tuple[tuple[str, str | Secret], ...] = ()
    export_timeout_s: float = 10.0

    def header_values(self) -> dict[str, str]:
        """The export headers with their secrets revealed (for the exporter only)."""
        return {k: v.reveal() if isinstance(v, Secret) else v for k, v in self.headers}


def otel_missing() -> str | None:
    """The first module of the ``otel`` extra that is not installed, or None."""
    for name in OTEL_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


def resolve_telemetry(
    spec: TelemetrySpec | None,
    problems: list[str],
    secret: Callable[[str, str], Secret | None],
) -> Telemetry | None:
    """Check the section; ``secret(ref, path)`` resolves an ``env:`` reference (or reports it)."""
    if spec is None or spec.otlp_endpoint is None:
        return None
    path = "$.telemetry"
    if not spec.otlp_endpoint.startswith(("http://", "https://")):
        problems.append(f"{path}.otlp_endpoint: must start with http:// or https:// (OTLP over HTTP)")
    if not spec.service_name.strip():
        problems.append(f"{path}.service_name: must not be empty")
    if not 0.0 <= spec.sample_ratio <= 1.0:
        problems.append(f"{path}.sample_ratio: must be between 0 and 1")
    if spec.export_timeout_s <= 0:
        problems.append(f"{path}.export_timeout_s: must be positive")
    headers: list[tuple[str, str | Secret]] = []
    for name, value in spec.headers.items():
        if value.startswith("env:"):
            s = secret(value, f"{path}.headers.{name}")
            if s is not None:
                headers.append((name.lower(), s))
        else:
            headers.append((name.lower(), value))
    missing = otel_missing()
    if missing is not None:
        problems.append(
            f"{path}.otlp_endpoint: traces need OpenTelemetry ({missing} is not installed): "
            "pip install 'switchpoint[otel]'"
        )
    return Telemetry(
        otlp_endpoint=spec.otlp_endpoint,
        service_name=spec.service_name,
        sample_ratio=spec.sample_ratio,
        headers=tuple(headers),
        export_timeout_s=spec.export_timeout_s,
    )
