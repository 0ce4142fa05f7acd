"""Google OAuth access tokens for Vertex AI, from google-auth (the ``vertex`` extra).

A provider's ``credentials_file`` names a service-account JSON key; without one, application
default credentials are used (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's user credentials, the
metadata server on Google Cloud). Tokens (scope ``cloud-platform``, about an hour long) are
fetched and refreshed ahead of expiry off the request path
(:mod:`switchpoint.providers.credentials`); the request path only reads the token in memory.
google-auth is imported only when a Vertex provider is used.
"""

from __future__ import annotations

import datetime
from typing import Any

from switchpoint.config import Provider
from switchpoint.errors import ProviderError
from switchpoint.providers.credentials import CloudCredentials, CredentialSource

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class GoogleSource(CredentialSource[str]):
    """An access token from a service-account file, or from application default credentials."""

    def __init__(self, credentials_file: str | None) -> None:
        super().__init__(f"Google ({credentials_file or 'application default credentials'})")
        self.credentials_file = credentials_file
        self._creds: Any = None

    def fetch(self) -> tuple[str, float | None]:
        try:
            import google.auth
            import google.auth.transport.requests
            from google.oauth2 import service_account
        except ImportError:  # pragma: no cover - the extra is installed in the tests
            raise ProviderError(
                "authentication", "the vertex family needs google-auth: pip install 'switchpoint[vertex]'"
            ) from None
        if self._creds is None:
            if self.credentials_file:
                self._creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    self.credentials_file, scopes=list(SCOPES)
                )
            else:
                self._creds, _ = google.auth.default(scopes=list(SCOPES))
        creds = self._creds
        creds.refresh(google.auth.transport.requests.Request())
        token = creds.token
        if not isinstance(token, str) or not token:
            raise LookupError("google-auth returned no access token")
        expiry = creds.expiry
        at = None
        if isinstance(expiry, datetime.datetime):  # google-auth keeps naive UTC
            at = (expiry if expiry.tzinfo else expiry.replace(tzinfo=datetime.UTC)).timestamp()
        return token, at


def google_source(registry: CloudCredentials, provider: Provider) -> CredentialSource[Any]:
    return registry.source(
        ("google", provider.credentials_file), lambda: GoogleSource(provider.credentials_file)
    )
