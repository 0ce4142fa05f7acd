"""Outbound proxies: a real CONNECT / forward proxy of the test's own between the upstream client
and loopback upstreams (HTTPS with a test CA, plain HTTP), the environment and per-provider
settings, NO_PROXY, proxy authentication, proxy failures, and pools kept per (proxy, origin).

The HTTPS upstream's certificate names ``upstream.test`` only, a name nothing here can resolve:
the proxy maps it to the loopback server, so a request that arrives proves the client asked the
proxy for the tunnel (and did not resolve the name itself), sent the origin's name in SNI and
checked the certificate against the origin's name and the configured CA bundle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchpoint.config import parse
from switchpoint.errors import ConfigError, ProviderError
from switchpoint.executor import H1Transport, transport_for
from switchpoint.executor.proxy import NoProxy, ProxyPolicy, Route, parse_proxy
from switchpoint.providers.base import UpstreamRequest
from test_h1_transport import Request, Upstream, answer, chunked, keep_alive

x509 = pytest.importorskip("cryptography.x509", reason="the cryptography package makes the test CA")

ORIGIN = "upstream.test"


# --- a test CA and certificates, made with the cryptography package ------------------------


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key: Any, issuer: tuple[str, Any] | None, sans: list[str], ca: bool) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]) if issuer else name
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        alt: list[x509.GeneralName] = []
        for s in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(obj: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "public_bytes"):
        return bytes(obj.public_bytes(serialization.Encoding.PEM))
    return bytes(
        obj.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


class Certs:
    def __init__(self, d: Path) -> None:
        ca_key = _key()
        ca = _cert("switchpoint proxy test CA", ca_key, None, [], True)
        self.ca = d / "ca.pem"
        self.ca.write_bytes(_pem(ca))
        self.leaf: dict[str, tuple[Path, Path]] = {}
        for label, sans in (("origin", [ORIGIN, "localhost", "127.0.0.1"]), ("other", ["other.test"])):
            key = _key()
            cert = _cert(sans[0], key, ("switchpoint proxy test CA", ca_key), sans, False)
            (d / f"{label}.pem").write_bytes(_pem(cert))
            (d / f"{label}.key").write_bytes(_pem(key))
            self.leaf[label] = (d / f"{label}.pem", d / f"{label}.key")

    def server(self, label: str = "origin", sni: list[str | None] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*self.leaf[label])
        if sni is not None:
            ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("proxy-tls"))


# --- a forward proxy: CONNECT tunnels and absolute-form requests ----------------------------


class ForwardProxy:
    """An HTTP proxy on a loopback port. ``hosts`` maps names to the address it connects to."""

    def __init__(self, hosts: dict[str, str], *, auth: str | None = None, refuse: int | None = None) -> None:
        self.hosts = hosts
        self.auth = auth  # the Proxy-Authorization value required, if any
        self.refuse = refuse  # answer every CONNECT with this status
        self.connections = 0
        self.tunnels: list[str] = []  # CONNECT authorities, in order
        self.targets: list[str] = []  # absolute-form request targets, in order
        self.auths: list[str | None] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _open(self, authority: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, _, port = authority.rpartition(":")
        return await asyncio.open_connection(self.hosts.get(host, host), int(port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        up: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            while True:
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
                }
                self.auths.append(headers.get("proxy-authorization"))
                if self.auth is not None and headers.get("proxy-authorization") != self.auth:
                    writer.write(b'HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="t"\r\n'
                                 b"content-length: 0\r\nconnection: close\r\n\r\n")  # fmt: skip
                    await writer.drain()
                    return
                if method == "CONNECT":
                    self.tunnels.append(target)
                    if self.refuse:
                        writer.write(b"HTTP/1.1 %d Refused\r\ncontent-length: 0\r\n\r\n" % self.refuse)
                        await writer.drain()
                        return
                    up_reader, up = await self._open(target)
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await asyncio.gather(_pipe(reader, up), _pipe(up_reader, writer))
                    return
                # absolute-form: forward with an origin-form target, one request after another
                self.targets.append(target)
                rest = target.split("://", 1)[1]
                authority, _, path = rest.partition("/")
                if up is None:
                    up_reader, up = await self._open(authority)
                    back = asyncio.ensure_future(_pipe(up_reader, writer))
                    self._tasks.add(back)
                kept = [x for x in lines[1:] if x and not x.lower().startswith("proxy-authorization:")]
                up.write(("\r\n".join([f"{method} /{path} HTTP/1.1", *kept]) + "\r\n\r\n").encode("latin-1"))
                size = int(headers.get("content-length", "0"))
                if size:
                    up.write(await reader.readexactly(size))
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if up is not None:
                up.close()
            writer.close()
            self._tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        dst.close()


@contextlib.asynccontextmanager
async def tls_front(certs: Certs, simulator_url: str) -> AsyncIterator[int]:
    """A TLS terminator in front of the simulator (certificate for ORIGIN and localhost, by the
    test CA); its port. Every connection's task is ended before it returns."""
    sim_port = int(simulator_url.rsplit(":", 1)[1])
    tasks: set[asyncio.Task[Any]] = set()

    async def terminate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        sim_writer: asyncio.StreamWriter | None = None
        try:
            sim_reader, sim_writer = await asyncio.open_connection("127.0.0.1", sim_port)
            await asyncio.gather(_pipe(reader, sim_writer), _pipe(sim_reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if sim_writer is not None:
                sim_writer.close()
            tasks.discard(task)

    front = await asyncio.start_server(terminate, "127.0.0.1", 0, ssl=certs.server())
    try:
        yield front.sockets[0].getsockname()[1]
    finally:
        front.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await front.wait_closed()
        await asyncio.sleep(0)


# --- helpers ---------------------------------------------------------------------------------


def conformance_handler(seen: list[Request]) -> Any:
    """JSON with a length, a chunked body, and a gzip body, on one keep-alive connection."""

    def make(r: Request) -> bytes:
        if r.target.endswith("/chunked"):
            body = chunked(b"data: one\n\n", b"data: two\n\n") + b"0\r\n\r\n"
            return answer(body, headers=("transfer-encoding: chunked",), length=False)
        if r.target.endswith("/gzip"):
            return answer(gzip.compress(b'{"zipped":true}'), headers=("content-encoding: gzip",))
        return answer(b'{"echo":' + r.body + b"}")

    return keep_alive(make, seen)


def post(url: str, body: bytes = b"1") -> UpstreamRequest:
    return UpstreamRequest(method="POST", url=url, headers={"content-type": "application/json"}, body=body)


async def send(t: H1Transport, url: str, body: bytes = b"1") -> Any:
    return await t.send(post(url, body), timeout_s=10, connect_timeout_s=5)


@pytest.fixture
async def https_upstream(certs: Certs) -> AsyncIterator[tuple[Upstream, list[Request], list[str | None]]]:
    seen: list[Request] = []
    sni: list[str | None] = []
    async with Upstream(conformance_handler(seen), tls=certs.server("origin", sni)) as up:
        yield up, seen, sni


@pytest.fixture
def no_ambient_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield


# --- HTTPS through a CONNECT tunnel ----------------------------------------------------------


async def test_https_through_a_connect_tunnel_chunked_gzip_and_reuse(
    certs: Certs, https_upstream: tuple[Upstream, list[Request], list[str | None]]
) -> None:
    up, seen, sni = https_upstream
    base = f"https://{ORIGIN}:{up.port}"
    async with ForwardProxy({ORIGIN: "127.0.0.1"}) as proxy:
        policy = ProxyPolicy({"HTTPS_PROXY": proxy.url}, [Route(base, None, str(certs.ca))])
        t = H1Transport(pool_size=4, proxies=policy)
        try:
            assert (await send(t, base + "/v1/json", b'"a"')).body == b'{"echo":"a"}'
            s = await t.open_stream(post(base + "/v1/chunked"), connect_timeout_s=5, read_timeout_s=5)
            assert s.status == 200
            assert b"".join([c async for c in s.chunks()]) == b"data: one\n\ndata: two\n\n"
            assert (await send(t, base + "/v1/gzip")).body == b'{"zipped":true}'
            assert (await send(t, base + "/v1/json", b'"b"')).body == b'{"echo":"b"}'
        finally:
            await t.close()
    assert proxy.tunnels == [f"{ORIGIN}:{up.port}"]  # one tunnel, kept alive for every request
    assert up.connections == 1
    assert sni == [ORIGIN]  # TLS is the origin's, inside the tunnel
    assert [r.target for r in seen] == ["/v1/json", "/v1/chunked", "/v1/gzip", "/v1/json"]
    assert seen[0].headers["host"] == f"{ORIGIN}:{up.port}"
    assert "proxy-authorization" not in seen[0].headers  # never sent to the origin


async def test_the_certificate_is_checked_against_the_origin_not_the_proxy(certs: Certs) -> None:
    async with (
        Upstream(keep_alive(lambda r: answer(b"x")), tls=certs.server("other")) as up,
        ForwardProxy({ORIGIN: "127.0.0.1"}) as proxy,
    ):
        base = f"https://{ORIGIN}:{up.port}"
        t = H1Transport(proxies=ProxyPolicy({"https_proxy": proxy.url}, [Route(base, None, str(certs.ca))]))
        try:
            with pytest.raises(ProviderError) as exc:
                await send(t, base + "/v1/x")
        finally:
            await t.close()
    assert proxy.tunnels == [f"{ORIGIN}:{up.port}"]
    assert exc.value.kind == "connection"
    assert exc.value.message == "cannot connect to upstream (SSLCertVerificationError)"


async def test_without_the_ca_bundle_the_test_ca_is_not_trusted(
    certs: Certs, https_upstream: tuple[Upstream, list[Request], list[str | None]]
) -> None:
    up, _, _ = https_upstream
    async with ForwardProxy({ORIGIN: "127.0.0.1"}) as proxy:
        t = H1Transport(proxies=ProxyPolicy({"HTTPS_PROXY": proxy.url}))
        try:
            with pytest.raises(ProviderError) as exc:
                await send(t, f"https://{ORIGIN}:{up.port}/v1/x")
        finally:
            await t.close()
    assert exc.value.message == "cannot connect to upstream (SSLCertVerificationError)"


async def test_proxy_credentials_from_the_provider_config(
    certs: Certs, https_upstream: tuple[Upstream, list[Request], list[str | None]]
) -> None:
    up, seen, _ = https_upstream
    expected = "Basic " + base64.b64encode(b"gw:s3cret").decode()
    async with ForwardProxy({ORIGIN: "127.0.0.1"}, auth=expected) as proxy:
        base = f"https://{ORIGIN}:{up.port}/v1"

        def config(password_var: str) -> Any:
            return parse(
                {
                    "providers": {
                        "corp": {
                            "family": "openai",
                            "base_url": base,
                            "api_key": "env:K",
                            "proxy": {"url": proxy.url, "username": "gw", "password": f"env:{password_var}"},
                            "ca_file": str(certs.ca),
                        }
                    },
                    "deployments": {"d": {"provider": "corp", "model": "m"}},
                },
                env={"K": "k", "GOOD": "s3cret", "BAD": "wrong"},
            )

        # the provider's proxy wins over the environment, and NO_PROXY does not apply to it
        t = transport_for(config("GOOD"), env={"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "*"})
        try:
            assert (await send(t, base + "/json", b"7")).body == b'{"echo":7}'
        finally:
            await t.close()
        t = transport_for(config("BAD"), env={})
        try:
            with pytest.raises(ProviderError) as exc:
                await send(t, base + "/json")
        finally:
            await t.close()
    assert proxy.auths == [expected, "Basic " + base64.b64encode(b"gw:wrong").decode()]
    assert len(seen) == 1
    assert exc.value.kind == "connection"
    assert exc.value.message == (
        f"the proxy {proxy.url} refused the tunnel to {ORIGIN}:{up.port} "
        "(HTTP/1.1 407 Proxy Authentication Required): check the proxy credentials"
    )
    assert "wrong" not in exc.value.message


async def test_a_proxy_that_refuses_or_is_not_there_is_a_connection_error(certs: Certs) -> None:
    async with ForwardProxy({}, refuse=502) as proxy:
        t = H1Transport(proxies=ProxyPolicy({"HTTPS_PROXY": proxy.url}))
        try:
            with pytest.raises(ProviderError) as exc:
                await send(t, f"https://{ORIGIN}:443/v1/x")
        finally:
            await t.close()
    assert exc.value.kind == "connection"
    assert (
        exc.value.message
        == f"the proxy {proxy.url} refused the tunnel to {ORIGIN}:443 (HTTP/1.1 502 Refused)"
    )
    # the proxy's port is now closed
    t = H1Transport(proxies=ProxyPolicy({"HTTPS_PROXY": proxy.url}))
    try:
        with pytest.raises(ProviderError) as exc:
            await send(t, f"https://{ORIGIN}:443/v1/x")
    finally:
        await t.close()
    assert exc.value.kind == "connection"
    assert exc.value.message == f"cannot connect to the proxy {proxy.url} (ConnectionRefusedError)"


# --- plain HTTP through a proxy: absolute-form -----------------------------------------------


async def test_plain_http_goes_in_absolute_form_with_the_proxy_credentials() -> None:
    seen: list[Request] = []
    auth = "Basic " + base64.b64encode(b"u:p w").decode()
    async with (
        Upstream(conformance_handler(seen)) as up,
        ForwardProxy({"plain.test": "127.0.0.1"}, auth=auth) as proxy,
    ):
        base = f"http://plain.test:{up.port}"
        t = H1Transport(proxies=ProxyPolicy({"http_proxy": f"http://u:p%20w@127.0.0.1:{proxy.port}"}))
        try:
            assert (await send(t, base + "/v1/json?x=1", b"1")).body == b'{"echo":1}'
            assert (await send(t, base + "/v1/gzip")).body == b'{"zipped":true}'
            s = await t.open_stream(post(base + "/v1/chunked"), connect_timeout_s=5, read_timeout_s=5)
            assert b"".join([c async for c in s.chunks()]) == b"data: one\n\ndata: two\n\n"
        finally:
            await t.close()
    assert proxy.targets == [base + "/v1/json?x=1", base + "/v1/gzip", base + "/v1/chunked"]
    assert proxy.connections == 1 and up.connections == 1  # kept alive through the proxy
    assert proxy.auths == [auth] * 3
    assert seen[0].headers["host"] == f"plain.test:{up.port}"


async def test_a_407_to_a_plain_request_is_a_connection_error() -> None:
    async with ForwardProxy({}, auth="Basic nope") as proxy:
        t = H1Transport(proxies=ProxyPolicy({"HTTP_PROXY": proxy.url}))
        try:
            with pytest.raises(ProviderError) as exc:
                await send(t, "http://plain.test/v1/x")
        finally:
            await t.close()
    assert exc.value.kind == "connection"
    assert exc.value.message == (
        f"the proxy {proxy.url} asked for authentication (407 Proxy Authentication Required): "
        "check the proxy credentials"
    )


# --- NO_PROXY, direct, pools -------------------------------------------------------------------


async def test_no_proxy_and_direct_bypass_the_proxy(
    certs: Certs, https_upstream: tuple[Upstream, list[Request], list[str | None]]
) -> None:
    up, seen, _ = https_upstream
    async with ForwardProxy({ORIGIN: "127.0.0.1"}) as proxy:
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "example.com, localhost"}
        t = H1Transport(proxies=ProxyPolicy(env, [Route("https://", None, str(certs.ca))]))
        try:
            assert (await send(t, f"https://localhost:{up.port}/v1/json")).status == 200
            assert (await send(t, f"https://{ORIGIN}:{up.port}/v1/json")).status == 200
        finally:
            await t.close()
        direct = Route(f"https://127.0.0.1:{up.port}", "direct", str(certs.ca))
        t = H1Transport(proxies=ProxyPolicy({"HTTPS_PROXY": proxy.url}, [direct]))
        try:
            assert (await send(t, f"https://127.0.0.1:{up.port}/v1/json")).status == 200
        finally:
            await t.close()
    assert proxy.tunnels == [f"{ORIGIN}:{up.port}"]  # localhost and the direct route went around it
    assert len(seen) == 3


async def test_pools_are_kept_per_proxy_and_origin(
    certs: Certs, https_upstream: tuple[Upstream, list[Request], list[str | None]]
) -> None:
    up, _, _ = https_upstream
    async with ForwardProxy({ORIGIN: "127.0.0.1"}) as p1, ForwardProxy({ORIGIN: "127.0.0.1"}) as p2:
        a, b = f"https://{ORIGIN}:{up.port}/a", f"https://{ORIGIN}:{up.port}/b"
        policy = ProxyPolicy(
            {}, [Route(a, parse_proxy(p1.url), str(certs.ca)), Route(b, parse_proxy(p2.url), str(certs.ca))]
        )
        t = H1Transport(proxies=policy)
        try:
            for _ in range(2):
                await send(t, a + "/json")
                await send(t, b + "/json")
        finally:
            await t.close()
    assert p1.tunnels == [f"{ORIGIN}:{up.port}"] and p2.tunnels == [f"{ORIGIN}:{up.port}"]
    assert up.connections == 2


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("", "api.openai.com", 443, False),
        ("*", "api.openai.com", 443, True),
        ("openai.com", "api.openai.com", 443, True),
        ("openai.com", "openai.com", 443, True),
        ("openai.com", "notopenai.com", 443, False),
        (".openai.com", "api.openai.com", 443, True),
        (".openai.com", "openai.com", 443, True),
        ("*.openai.com", "api.openai.com", 443, True),
        ("API.OpenAI.com", "api.openai.com", 443, True),
        ("api.openai.com:8443", "api.openai.com", 443, False),
        ("api.openai.com:8443", "api.openai.com", 8443, True),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "11.1.2.3", 443, False),
        ("10.0.0.0/8", "ten.example", 443, False),
        ("192.168.1.7", "192.168.1.7", 80, True),
        ("::1", "::1", 443, True),
        ("[::1]:8080", "::1", 8080, True),
        ("[::1]:8080", "::1", 443, False),
        ("fd00::/8", "fd12::1", 443, True),
        (" a.test , ,b.test ", "b.test", 443, True),
    ],
)
def test_no_proxy_matching(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    assert NoProxy(no_proxy).bypass(host, port) is bypass


@pytest.mark.parametrize("host", ["localhost", "api.localhost", "127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_never_goes_through_the_environments_proxy(host: str) -> None:
    p = ProxyPolicy({"HTTP_PROXY": "http://proxy:3128", "HTTPS_PROXY": "http://proxy:3128"})
    assert p.choose(f"http://{host}/v1", False, host, 80) == (None, None)
    assert p.choose(f"https://{host}/v1", True, host, 443) == (None, None)
    explicit = ProxyPolicy({}, [Route("http://127.0.0.1:8000", parse_proxy("http://proxy:3128"), None)])
    chosen, _ = explicit.choose("http://127.0.0.1:8000/v1", False, "127.0.0.1", 8000)
    assert chosen is not None and chosen.host == "proxy"  # a provider's own proxy still applies


def test_which_proxy_the_environment_chooses() -> None:
    p = ProxyPolicy(
        {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "HTTP_PROXY": "plain:3"}
    )
    chosen, _ = p.choose("https://x/", True, "x", 443)
    assert chosen is not None and (chosen.host, chosen.port) == ("lower", 2)  # lower-case wins
    chosen, _ = p.choose("http://x/", False, "x", 80)
    assert chosen is not None and (chosen.host, chosen.port, chosen.auth) == ("plain", 3, None)
    assert ProxyPolicy({}).inert and not p.inert
    with pytest.raises(ConfigError, match="only http:// proxies"):
        ProxyPolicy({"HTTPS_PROXY": "https://user:pw@proxy:443"})
    with pytest.raises(ConfigError) as exc:
        ProxyPolicy({"HTTPS_PROXY": "socks5://user:pw@proxy:1080"})
    assert "pw" not in str(exc.value)


def test_provider_proxy_config_is_checked() -> None:
    def check(proxy: Any) -> ConfigError:
        with pytest.raises(ConfigError) as exc:
            parse(
                {
                    "providers": {"p": {"family": "openai", "base_url": "https://x/v1", "proxy": proxy}},
                    "deployments": {"d": {"provider": "p", "model": "m"}},
                },
                env={},
            )
        return exc.value

    assert "put the credentials in proxy.username" in str(check("http://u:p@proxy:3128"))
    assert "must be an http:// URL" in str(check("https://proxy:3128"))
    assert "proxy.password: secrets must be references" in str(
        check({"url": "http://proxy:1", "password": "x"})
    )
    ok = parse(
        {
            "providers": {
                "p": {"family": "openai", "base_url": "https://x/v1", "proxy": "direct", "ca_file": "/ca.pem"}
            },
            "deployments": {"d": {"provider": "p", "model": "m"}},
        },
        env={},
    )
    assert ok.providers["p"].proxy == "direct" and ok.providers["p"].ca_file == "/ca.pem"


async def test_the_simulator_over_tls_through_the_proxy_conformance_style(
    certs: Certs, simulator_url: str, no_ambient_proxy: None
) -> None:
    """The OpenAI adapter's request, plain and streamed, through a tunnel to a TLS front of the
    simulator (the test's TLS terminator forwards to it), with the gateway's transport."""
    from switchpoint.canonical import ChatRequest, Message, TextPart
    from switchpoint.providers import adapter_for
    from switchpoint.streaming import SSEDecoder

    async with tls_front(certs, simulator_url) as port, ForwardProxy({ORIGIN: "127.0.0.1"}) as proxy:
        cfg = parse(
            {
                "providers": {
                    "o": {
                        "family": "openai",
                        "base_url": f"https://{ORIGIN}:{port}/openai/v1",
                        "api_key": "env:K",
                        "ca_file": str(certs.ca),
                    }
                },
                "deployments": {"d": {"provider": "o", "model": "sim-openai"}},
            },
            env={"K": "sk-x"},
        )
        t = transport_for(cfg, env={"HTTPS_PROXY": proxy.url})
        dep = cfg.deployments["d"]
        adapter = adapter_for("openai")
        try:
            msg = [Message(role="user", parts=[TextPart(text="hi")])]
            r = await t.send(
                adapter.build_chat(ChatRequest(model="x", messages=msg, max_tokens=20), dep),
                timeout_s=10,
                connect_timeout_s=5,
            )
            assert r.status == 200
            assert adapter.parse_chat(r, dep).usage.output_tokens > 0
            req = ChatRequest(model="x", messages=msg, max_tokens=20, stream=True)
            s = await t.open_stream(adapter.build_chat(req, dep), connect_timeout_s=5, read_timeout_s=5)
            parser, dec, events = adapter.stream_parser(req, dep), SSEDecoder(), []
            async for chunk in s.chunks():
                for frame in dec.feed(chunk):
                    events += parser.feed(frame)
            events += parser.close()
            assert s.status == 200 and events
        finally:
            await t.close()
    assert proxy.tunnels == [f"{ORIGIN}:{port}"]


async def test_the_gateway_honours_https_proxy_and_no_proxy_from_its_environment(
    certs: Certs, simulator_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``switchpoint`` as deployed: HTTPS_PROXY in the process environment, no proxy in the
    config. An OpenAI client's requests reach an HTTPS front of the simulator (test CA in the
    provider's ca_file) through the proxy; with the upstream's host in NO_PROXY they do not."""
    import openai

    from switchpoint.api.app import create_app

    from servers import serve_in_thread

    def config(host: str, port: int) -> Any:
        return parse(
            {
                "providers": {
                    "o": {
                        "family": "openai",
                        "base_url": f"https://{host}:{port}/openai/v1",
                        "api_key": "env:K",
                        "ca_file": str(certs.ca),
                    }
                },
                "deployments": {"d": {"provider": "o", "model": "sim-openai"}},
                "models": {"m": "d"},
                "storage": {"enabled": False},
            },
            env={"K": "sk-x"},
        )

    def ask(url: str) -> str:
        with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
            return _ask(client)

    def _ask(client: Any) -> str:
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        chunks = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == r.choices[0].message.content
        return r.choices[0].message.content or ""

    async with tls_front(certs, simulator_url) as port, ForwardProxy({ORIGIN: "127.0.0.1"}) as proxy:
        for name in ("https_proxy", "http_proxy", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with serve_in_thread(create_app(config(ORIGIN, port))) as url:
            assert (await asyncio.to_thread(ask, url)).startswith("[simulated")
        assert proxy.tunnels == [f"{ORIGIN}:{port}"]  # both requests, one kept-alive tunnel
        monkeypatch.setenv("NO_PROXY", "localhost")
        with serve_in_thread(create_app(config("localhost", port))) as url:
            assert (await asyncio.to_thread(ask, url)).startswith("[simulated")
        assert proxy.tunnels == [f"{ORIGIN}:{port}"]  # NO_PROXY went around it


def test_a_cloud_providers_proxy_applies_to_its_deployments_endpoints_only() -> None:
    cfg = parse(
        {
            "providers": {
                "aws": {
                    "family": "bedrock",
                    "region": "eu-west-1",
                    "proxy": "http://aws-proxy:3128",
                    "api_key": "env:K",
                },
                "oa": {"family": "openai", "base_url": "https://api.openai.com/v1", "api_key": "env:K"},
            },
            "deployments": {
                "eu": {"provider": "aws", "model": "amazon.nova-pro-v1:0"},
                "us": {"provider": "aws", "model": "amazon.nova-pro-v1:0", "region": "us-east-1"},
                "gpt": {"provider": "oa", "model": "gpt-5"},
            },
        },
        env={"K": "k"},
    )
    t = transport_for(cfg, env={})
    policy = t._proxies
    assert policy is not None

    def via(url: str) -> str | None:
        host = url.split("/")[2]
        proxy, _ = policy.choose(url, True, host, 443)
        return None if proxy is None else proxy.url

    assert via("https://bedrock-runtime.eu-west-1.amazonaws.com/model/x/converse") == "http://aws-proxy:3128"
    assert via("https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse") == "http://aws-proxy:3128"
    assert via("https://api.openai.com/v1/chat/completions") is None  # not the other provider's
    assert via("https://bedrock-runtime.ap-south-1.amazonaws.com/model/x/converse") is None
