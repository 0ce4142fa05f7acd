"""AWS credentials and SigV4 signing for Bedrock, from botocore (the ``bedrock`` extra).

Credentials come from botocore's own chain, as the AWS CLI and SDKs find them: environment
variables, the shared credentials and config files (``aws_profile`` picks a profile), assumed
roles, web identity (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, as on EKS), the
container credentials endpoint (ECS) and the instance metadata service. They are fetched and
refreshed off the request path (:mod:`switchpoint.providers.credentials`); signing is
botocore's ``SigV4Auth`` over the exact method, URL, headers and body that go out.
botocore is imported only when a Bedrock provider is used.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from switchpoint.config import Provider
from switchpoint.errors import ProviderError
from switchpoint.providers.credentials import CloudCredentials, CredentialSource

if TYPE_CHECKING:
    from botocore.credentials import ReadOnlyCredentials

SERVICE = "bedrock"


def _botocore() -> Any:
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - the extra is installed in the tests
        raise ProviderError(
            "authentication",
            "the bedrock family needs botocore: pip install 'switchpoint[bedrock]'",
        ) from None
    return botocore


class AwsSource(CredentialSource["ReadOnlyCredentials"]):
    """botocore's credential chain for one profile (``None``: the default chain)."""

    #: botocore refreshes a temporary set from 15 minutes before its expiry.
    refresh_ahead_s = 900.0

    def __init__(self, profile: str | None) -> None:
        super().__init__(f"AWS ({'profile ' + profile if profile else 'default chain'})")
        self.profile = profile
        self._creds: Any = None

    def fetch(self) -> tuple[ReadOnlyCredentials, float | None]:
        if self._creds is None:
            botocore = _botocore()
            session = botocore.session.Session(profile=self.profile)
            creds = session.get_credentials()
            if creds is None:
                raise LookupError("no AWS credentials found (environment, shared files, roles, metadata)")
            self._creds = creds
        # A refreshable set refreshes itself here when it is near its expiry (in this thread).
        frozen = self._creds.get_frozen_credentials()
        expiry = getattr(self._creds, "_expiry_time", None)
        at = None
        if isinstance(expiry, datetime.datetime):
            at = expiry.timestamp() if expiry.tzinfo else expiry.replace(tzinfo=datetime.UTC).timestamp()
        return frozen, at


def aws_source(registry: CloudCredentials, provider: Provider) -> CredentialSource[Any]:
    return registry.source(("aws", provider.aws_profile), lambda: AwsSource(provider.aws_profile))


def sign(
    credentials: Any,
    region: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    service: str = SERVICE,
) -> dict[str, str]:
    """``headers`` plus SigV4's (``Authorization``, ``X-Amz-Date``, ``X-Amz-Security-Token``)
    for this exact request, signed by botocore's ``SigV4Auth`` (``service``: ``bedrock``)."""
    _botocore()
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(request)
    return {k: str(v) for k, v in request.headers.items()}
