"""Outbound proxies and TLS trust for the upstream client: which proxy (if any) serves a URL.

Read once, at start-up (never per request: :class:`~switchpoint.executor.h1.H1Transport` asks
only when it meets a URL it has not routed yet):

- the environment, as curl and Python's ``urllib`` read it: ``https_proxy`` / ``HTTPS_PROXY``
  for ``https://`` upstreams, ``http_proxy`` / ``HTTP_PROXY`` for ``http://`` ones (the
  lower-case name wins when both are set), and ``no_proxy`` / ``NO_PROXY``: a comma-separated
  list of host names (``api.example.com``, matching it and its sub-domains), domains with a
  leading dot (``.corp``), ``*`` (no proxy at all), ``host:port`` (that port only), IP
  addresses and CIDR blocks (``10.0.0.0/8``, ``::1``). A proxy URL may carry ``user:password@``
  (sent as ``Proxy-Authorization: Basic``). ``localhost`` and loopback addresses are always
  reached directly.
- per provider (``providers.<name>.proxy``): a proxy URL that overrides the environment for
  that provider's ``base_url`` (``NO_PROXY`` does not apply to it), or ``direct`` to bypass
  any proxy; and ``ca_file``, a PEM bundle of the CAs its certificates are checked against
  (a company that inspects TLS). Without one, the system's store is used, which honours
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Final
from urllib.parse import unquote, urlsplit

from switchpoint.config import Provider
from switchpoint.errors import ConfigError

DIRECT: Final = "direct"


class Proxy:
    """One HTTP proxy: where to connect, and the ``Proxy-Authorization`` value, if any."""

    __slots__ = ("auth", "host", "port", "url")

    def __init__(self, host: str, port: int, auth: str | None) -> None:
        self.host = host
        self.port = port
        self.auth = auth
        #: For messages and pool keys: never the credentials.
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def key(self) -> tuple[str, int, str | None]:
        return (self.host, self.port, self.auth)


def parse_proxy(url: str, *, username: str | None = None, password: str | None = None) -> Proxy:
    """A proxy from its URL (``http://[user:password@]host[:port]``; a bare ``host:port`` is
    read as ``http://``). ``username`` / ``password`` override the URL's credentials."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError([f"proxy URL {_safe(url)!r} is not valid: {exc}"]) from None
    if parts.scheme.lower() != "http":
        raise ConfigError(
            [
                f"proxy URL {_safe(url)!r}: only http:// proxies are supported (HTTPS upstreams go "
                "through them with CONNECT)"
            ]
        )
    if not parts.hostname:
        raise ConfigError([f"proxy URL {_safe(url)!r} has no host"])
    user = username if username is not None else unquote(parts.username or "")
    secret = password if password is not None else unquote(parts.password or "")
    auth = None
    if user or secret:
        auth = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    return Proxy(parts.hostname, port or 80, auth)


def _safe(url: str) -> str:
    """A proxy URL without its password, for messages."""
    at = url.rfind("@")
    if at < 0:
        return url
    scheme = url.find("://")
    return (url[: scheme + 3] if scheme >= 0 else "") + "***@" + url[at + 1 :]


class NoProxy:
    """A parsed ``NO_PROXY`` list."""

    __slots__ = ("_all", "_names", "_nets")

    def __init__(self, text: str) -> None:
        self._all = False
        self._names: list[tuple[str, int | None]] = []
        self._nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        for raw in text.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if item == "*":
                self._all = True
                continue
            port: int | None = None
            host = item
            if host.startswith("["):  # [::1]:8080
                end = host.find("]")
                rest = host[end + 1 :]
                host = host[1:end]
                if rest.startswith(":") and rest[1:].isdigit():
                    port = int(rest[1:])
            elif host.count(":") == 1:  # host:port (an IPv6 address has more colons)
                name, _, p = host.partition(":")
                if p.isdigit():
                    host, port = name, int(p)
            try:
                self._nets.append((ipaddress.ip_network(host, strict=False), port))
                continue
            except ValueError:
                pass
            self._names.append((host.lstrip("*").lstrip("."), port))

    def bypass(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is reached directly."""
        if self._all:
            return True
        host = host.lower().rstrip(".")
        if self._nets:
            try:
                addr = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                addr = None
            if addr is not None:
                for net, p in self._nets:
                    if (p is None or p == port) and addr.version == net.version and addr in net:
                        return True
        for name, p in self._names:
            if p is not None and p != port:
                continue
            if host == name or host.endswith("." + name):
                return True
        return False


def _env(env: Mapping[str, str], name: str) -> str:
    value = env.get(name.lower())
    if value is None:
        value = env.get(name.upper())
    return (value or "").strip()


class Route:
    """How one provider's upstream is reached: its proxy setting and its CA bundle."""

    __slots__ = ("base_url", "ca_file", "proxy")

    def __init__(self, base_url: str, proxy: Proxy | str | None, ca_file: str | None) -> None:
        #: Requests whose URL starts with this use this route (the longest prefix wins).
        self.base_url = base_url
        #: A :class:`Proxy`, :data:`DIRECT`, or ``None``: the environment decides.
        self.proxy = proxy
        self.ca_file = ca_file


class ProxyPolicy:
    """Which proxy and which CA bundle serve a URL (asked once per URL the transport routes)."""

    __slots__ = ("_http", "_https", "_no_proxy", "_routes")

    def __init__(self, env: Mapping[str, str] | None = None, routes: Sequence[Route] = ()) -> None:
        env = env if env is not None else {}
        https = _env(env, "https_proxy")
        http = _env(env, "http_proxy")
        self._https = parse_proxy(https) if https else None
        self._http = parse_proxy(http) if http else None
        self._no_proxy = NoProxy(_env(env, "no_proxy"))
        self._routes = sorted(routes, key=lambda r: len(r.base_url), reverse=True)

    @property
    def inert(self) -> bool:
        """No proxy and no CA bundle anywhere: every URL goes direct, with the system's store."""
        return (
            self._https is None
            and self._http is None
            and all(r.ca_file is None and not isinstance(r.proxy, Proxy) for r in self._routes)
        )

    def choose(self, url: str, tls: bool, host: str, port: int) -> tuple[Proxy | None, str | None]:
        """The proxy (``None``: direct) and CA bundle (``None``: the system's) for ``url``."""
        for route in self._routes:
            if url.startswith(route.base_url):
                if isinstance(route.proxy, Proxy):
                    return route.proxy, route.ca_file
                if route.proxy == DIRECT:
                    return None, route.ca_file
                return self._from_env(tls, host, port), route.ca_file
        return self._from_env(tls, host, port), None

    def _from_env(self, tls: bool, host: str, port: int) -> Proxy | None:
        proxy = self._https if tls else self._http
        if proxy is None or _loopback(host) or self._no_proxy.bypass(host, port):
            return None
        return proxy


def _loopback(host: str) -> bool:
    """``localhost`` and loopback addresses never go through the environment's proxy (as in
    Go's net/http): the simulator, a local vLLM or Ollama."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def policy_for(
    providers: Iterable[Provider],
    env: Mapping[str, str],
    endpoints: Mapping[str, Iterable[str]] | None = None,
) -> ProxyPolicy:
    """The proxy policy of a configuration's providers over an environment (``os.environ``).

    A provider's settings apply under its ``base_url``; a cloud provider without one (Bedrock,
    Vertex: the endpoint follows from each deployment's region or location) under each of its
    deployments' endpoints, given in ``endpoints`` by provider name. A provider with neither
    sets nothing (never a route that would match every URL)."""
    routes: list[Route] = []
    seen: set[str] = set()
    for p in providers:
        proxy: Proxy | str | None = p.proxy
        if p.proxy is not None and p.proxy != DIRECT:
            password = None if p.proxy_password is None else p.proxy_password.reveal()
            proxy = parse_proxy(p.proxy, username=p.proxy_username, password=password)
        if proxy is None and p.ca_file is None:
            continue
        prefixes = (
            [p.base_url] if p.base_url else [e.rstrip("/") + "/" for e in (endpoints or {}).get(p.name, ())]
        )
        for prefix in prefixes:
            if prefix and prefix not in seen:  # the first provider of an endpoint decides it
                seen.add(prefix)
                routes.append(Route(prefix, proxy, p.ca_file))
    return ProxyPolicy(env, routes)
