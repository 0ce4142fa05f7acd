"""Console sessions: a signed cookie with a server-checked expiry, and CSRF tokens.

The cookie (``sp_session``, httpOnly, ``SameSite=Strict``, ``Path=/ui``) holds who signed in
(name, key id), when the session ends and a random session id, signed with HMAC-SHA256. The
expiry is in the signed payload and checked here on every request: a cookie kept past it, or
edited, is refused. The signing secret is ``SWITCHPOINT_CONSOLE_SECRET`` when set, else derived
from the master key (so every worker of ``serve --workers N`` accepts the same cookies, and
changing the master key signs every session out), else — an open gateway — random per process.

Every form that changes something carries ``csrf``: an HMAC of the session id, compared in
constant time. The sign-in form, before any session exists, is protected the same way with a
short-lived pre-session cookie (``sp_login``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from switchpoint.config import Config

COOKIE = "sp_session"
LOGIN_COOKIE = "sp_login"
PATH = "/ui"
#: How long a sign-in lasts (seconds).
LIFETIME_S = 8 * 3600
#: How long a sign-in form stays usable.
LOGIN_FORM_S = 3600

_RANDOM = secrets.token_bytes(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_for(config: Config) -> bytes:
    env = os.environ.get("SWITCHPOINT_CONSOLE_SECRET")
    if env:
        return hashlib.sha256(b"switchpoint-console:" + env.encode()).digest()
    if config.master_key is not None:
        return hmac.new(
            config.master_key.reveal().encode(), b"switchpoint-console-session", "sha256"
        ).digest()
    return _RANDOM


@dataclass(frozen=True, kw_only=True)
class Session:
    name: str
    key_id: str | None
    expires_at: float
    sid: str


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    def issue(self, name: str, key_id: str | None, *, now: float | None = None) -> tuple[str, Session]:
        """A new session and its cookie value."""
        t = time.time() if now is None else now
        s = Session(name=name, key_id=key_id, expires_at=t + LIFETIME_S, sid=secrets.token_urlsafe(18))
        payload = json.dumps(
            {"n": s.name, "k": s.key_id, "e": s.expires_at, "s": s.sid}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}", s

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie holds; None when absent, forged, edited or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        try:
            doc = json.loads(payload)
            s = Session(name=str(doc["n"]), key_id=doc["k"], expires_at=float(doc["e"]), sid=str(doc["s"]))
        except (ValueError, KeyError, TypeError):
            return None
        if (time.time() if now is None else now) >= s.expires_at:
            return None
        return s

    def csrf(self, sid: str) -> str:
        """The CSRF token of a session (or of a sign-in form's nonce)."""
        return _b64(self._mac(b"csrf:" + sid.encode()))[:32]

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf(sid).encode())

    def login_nonce(self, *, now: float | None = None) -> str:
        """The pre-session cookie of a sign-in form: a nonce and when it was made, signed."""
        t = int(time.time() if now is None else now)
        raw = f"{secrets.token_urlsafe(12)}:{t}"
        return f"{raw}.{_b64(self._mac(raw.encode()))}"

    def login_ok(self, nonce: str | None, token: str | None, *, now: float | None = None) -> bool:
        if not nonce or "." not in nonce:
            return False
        raw, mac = nonce.rsplit(".", 1)
        try:
            if not hmac.compare_digest(_unb64(mac), self._mac(raw.encode())):
                return False
            made = int(raw.rsplit(":", 1)[1])
        except (ValueError, IndexError):
            return False
        if (time.time() if now is None else now) - made > LOGIN_FORM_S:
            return False
        return self.csrf_ok(nonce, token)
