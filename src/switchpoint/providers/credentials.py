"""Cloud credentials (AWS for Bedrock, Google OAuth for Vertex), kept fresh off the request path.

An adapter signs a request with what :meth:`CredentialSource.current` returns: values already in
memory, never a network call. Fetching (botocore's credential chain, google-auth's token
refresh) is blocking I/O: it runs in a worker thread, once at start-up
(:meth:`CloudCredentials.start`, from the gateway's start-up) and then in one tracked
background task per source that refreshes ahead of expiry (``REFRESH_AHEAD_S`` before it;
failures are retried with backoff while the old value is still good). Shutdown cancels the
tasks (:meth:`CloudCredentials.close`).

A source asked for before it was started is started then, in the background, and the request
fails over with an ``authentication`` error saying the credentials are not ready yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Final, Generic, TypeVar

from switchpoint.config import Provider
from switchpoint.errors import ProviderError

log = logging.getLogger("switchpoint.credentials")

#: Refresh this long before a value expires.
REFRESH_AHEAD_S: Final = 300.0
#: Retry a failed refresh after this long, doubling up to ``RETRY_MAX_S``.
RETRY_MIN_S: Final = 1.0
RETRY_MAX_S: Final = 60.0
#: How long a value without an expiry lives before it is fetched again (a shared profile
#: edited while the gateway runs, rotated static keys).
NO_EXPIRY_REFETCH_S: Final = 3600.0
#: How long start-up waits for the first fetch of every source.
START_TIMEOUT_S: Final = 20.0

T = TypeVar("T")


class CredentialSource(ABC, Generic[T]):
    """One set of credentials: the value in memory, and its background refresh."""

    #: Refresh this long before the value expires.
    refresh_ahead_s = REFRESH_AHEAD_S

    def __init__(self, label: str) -> None:
        self.label = label
        self.value: T | None = None
        #: Epoch seconds when ``value`` stops being valid (``None``: no known expiry).
        self.expires_at: float | None = None
        self.error: str | None = None
        self.fetches = 0
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None

    @abstractmethod
    def fetch(self) -> tuple[T, float | None]:
        """Blocking: a fresh value and when it expires (epoch seconds). Runs in a thread."""

    def current(self) -> T:
        """The value in memory (never fetches). Raises ``ProviderError('authentication')``."""
        value = self.value
        if value is not None and (self.expires_at is None or self.expires_at > time.time()):
            return value
        if not self._running():
            self.start_background()
        why = f": {self.error}" if self.error else ""
        state = "have expired" if value is not None else "are not available yet"
        raise ProviderError("authentication", f"the {self.label} credentials {state}{why}")

    async def _fetch_now(self) -> None:
        try:
            value, expires = await asyncio.to_thread(self.fetch)
        except Exception as exc:  # botocore / google-auth raise many kinds
            self.error = _describe(exc)
            raise
        self.value, self.expires_at, self.error = value, expires, None
        self.fetches += 1

    def _running(self) -> bool:
        task = self._task
        if task is None or task.done():
            return False
        try:
            return task.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            return True

    def start_background(self) -> asyncio.Future[None]:
        """Start the first fetch and the refresh loop (once per event loop); a future of the
        first fetch."""
        if self._first is None or not self._running():
            loop = asyncio.get_running_loop()
            self._first = loop.create_future()
            self._task = loop.create_task(
                self._run(self._first), name=f"switchpoint-credentials-{self.label}"
            )
        return self._first

    async def _run(self, first: asyncio.Future[None]) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                await self._fetch_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not fetch the %s credentials: %s (retrying)", self.label, self.error)
                if not first.done():
                    first.set_result(None)  # start-up goes on; requests see the error
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            if not first.done():
                first.set_result(None)
            await asyncio.sleep(self._next_refresh_in())

    def _next_refresh_in(self) -> float:
        if self.expires_at is None:
            return NO_EXPIRY_REFETCH_S
        return max(RETRY_MIN_S, self.expires_at - self.refresh_ahead_s - time.time())

    async def stop(self) -> None:
        task, self._task, self._first = self._task, None, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class CloudCredentials:
    """Every credential source of the process, one per distinct provider setting."""

    def __init__(self) -> None:
        self._sources: dict[tuple[Any, ...], CredentialSource[Any]] = {}

    def source(self, key: tuple[Any, ...], make: Any) -> CredentialSource[Any]:
        found = self._sources.get(key)
        if found is None:
            found = self._sources[key] = make()
        return found

    def for_provider(self, provider: Provider) -> CredentialSource[Any] | None:
        if provider.family == "bedrock":
            from switchpoint.providers.aws_auth import aws_source

            return aws_source(self, provider)
        if provider.family == "vertex":
            from switchpoint.providers.google_auth import google_source

            return google_source(self, provider)
        return None

    async def start(self, providers: Iterable[Provider]) -> None:
        """Fetch every cloud provider's credentials once (concurrently, bounded) and start their
        refresh; a source that cannot be fetched is logged and retried in the background."""
        firsts = []
        for p in providers:
            if p.api_key is not None:
                continue  # an API key (Bedrock, Vertex express mode, a simulated provider)
            src = self.for_provider(p)
            if src is not None:
                firsts.append(src.start_background())
        if firsts:
            try:
                async with asyncio.timeout(START_TIMEOUT_S):
                    await asyncio.gather(*firsts)
            except TimeoutError:
                log.warning("cloud credentials not fetched within %g s; still trying", START_TIMEOUT_S)

    async def close(self) -> None:
        sources = list(self._sources.values())
        self._sources.clear()
        for src in sources:
            await src.stop()


#: The process's credential sources (the adapters are process-wide too).
CREDENTIALS = CloudCredentials()
