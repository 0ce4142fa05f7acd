"""A Google OAuth token endpoint of the tests' own, and a service-account key that points at it.

The key is an RSA key made here with the ``cryptography`` package; the endpoint checks the JWT
assertion google-auth signs with it (RS256 with the key, the audience, the scope) before it issues a token
``ya29.sim-<n>``, so a token the gateway sends upstream proves the whole exchange happened.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://oauth2.googleapis.com/token"


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class TokenServer:
    def __init__(self, expires_in: int = 3600) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.claims: list[dict[str, Any]] = []
        self.url = ""

    def service_account(self, path: Path, project: str = "sim-project") -> Path:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": project,
                    "private_key_id": "test-key-1",
                    "private_key": pem,
                    "client_email": f"gateway@{project}.iam.gserviceaccount.com",
                    "client_id": "1234567890",
                    "token_uri": self.url + "/token",
                }
            )
        )
        return path

    def _handle(self, body: bytes) -> tuple[int, dict[str, Any]]:
        form = parse_qs(body.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        header, payload, signature = form["assertion"][0].split(".")
        try:
            self.key.public_key().verify(
                _b64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        claims = json.loads(_b64(payload))
        # google-auth names Google's token endpoint as the audience, whatever token_uri is
        if claims.get("aud") != AUDIENCE or SCOPE not in claims.get("scope", "").split():
            return 400, {"error": "invalid_scope"}
        self.claims.append(claims)
        token = f"ya29.sim-{len(self.issued) + 1}"
        self.issued.append(token)
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    @contextlib.contextmanager
    def running(self) -> Iterator[TokenServer]:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                status, doc = owner._handle(self.rfile.read(int(self.headers.get("content-length", "0"))))
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            time.sleep(0)
