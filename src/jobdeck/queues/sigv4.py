"""Who may use the SQS endpoint: SigV4 signatures checked against the credentials
jobdeck gives its workers and those an operator adds.

The expected signature is computed by botocore's own signer (the canonical request,
the string to sign and the key derivation of ``SigV4Auth``) over the request as it
arrived, and compared in constant time; nothing of SigV4 is re-implemented here.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobdeck.queues.attributes import LOCAL_ACCOUNT_ID
from jobdeck.queues.errors import SqsError

# The workers' credentials: the access key id is fixed, the secret is the operator's
# (JOBDECK_SQS_SECRET_ACCESS_KEY), or a well-known one where nothing is verified.
WORKER_ACCESS_KEY_ID = "jobdeck"
WELL_KNOWN_SECRET = "jobdeck-local"
SECRET_ENV = "JOBDECK_SQS_SECRET_ACCESS_KEY"
# A file of further credentials, one ``ACCESS_KEY_ID:SECRET`` (or
# ``ACCESS_KEY_ID:SECRET:ACCOUNT_ID``, for another account) a line.
CREDENTIALS_FILE_ENV = "JOBDECK_SQS_CREDENTIALS"
# How far a request's X-Amz-Date may be from the endpoint's clock, as AWS allows.
MAX_SKEW_S = 15 * 60

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


def worker_secret(environ: Mapping[str, str]) -> str:
    return environ.get(SECRET_ENV, "").strip() or WELL_KNOWN_SECRET


@dataclass(frozen=True)
class KeyRing:
    """The credentials whose signatures are accepted: access key id -> secret, and the
    account of each key that is not the local account's (whose queues it does not own)."""

    secrets: Mapping[str, str]
    accounts: Mapping[str, str]

    def account_of(self, key_id: str) -> str:
        return self.accounts.get(key_id, LOCAL_ACCOUNT_ID)


def load_credentials(environ: Mapping[str, str]) -> KeyRing:
    """The workers' pair, and the operator's file's lines. Raises ValueError (with the
    file's place) for a line that is no credential."""
    secrets = {WORKER_ACCESS_KEY_ID: worker_secret(environ)}
    accounts: dict[str, str] = {}
    path = environ.get(CREDENTIALS_FILE_ENV, "").strip()
    if not path:
        return KeyRing(secrets, accounts)
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = [part.strip() for part in text.split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{path}:{number}:1: expected ACCESS_KEY_ID:SECRET[:ACCOUNT_ID]")
        if len(parts) == 3:
            if not (len(parts[2]) == 12 and parts[2].isdigit()):
                raise ValueError(f"{path}:{number}:1: an account id is 12 digits")
            accounts[parts[0]] = parts[2]
        secrets[parts[0]] = parts[1]
    return KeyRing(secrets, accounts)


@dataclass(frozen=True)
class SignedRequest:
    """A request as it arrived, for checking its signature."""

    method: str
    url: str  # scheme://host/path?query, as the client addressed it
    headers: list[tuple[str, str]]
    body: bytes


def verify(request: SignedRequest, credentials: KeyRing, now: datetime) -> str:
    """The access key id that signed ``request``, or SQS's refusal."""
    header_map: dict[str, list[str]] = {}
    for name, value in request.headers:
        header_map.setdefault(name.lower(), []).append(value)
    authorization = ", ".join(header_map.get("authorization", []))
    if not authorization:
        raise SqsError("MissingAuthenticationToken", "Request is missing Authentication Token")
    parsed = _AUTHORIZATION.match(authorization)
    scope = parsed.group("credential").split("/") if parsed else []
    if parsed is None or len(scope) != 5 or scope[4] != "aws4_request":
        raise SqsError(
            "IncompleteSignature",
            "Authorization header requires Credential, SignedHeaders and Signature "
            "(AWS4-HMAC-SHA256).",
        )
    key_id, day, region, service, _ = scope
    secret = credentials.secrets.get(key_id)
    if secret is None:
        raise SqsError(
            "InvalidClientTokenId", "The security token included in the request is invalid."
        )
    stamp = (header_map.get("x-amz-date") or [""])[0]
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SqsError("IncompleteSignature", "The request must carry X-Amz-Date.") from None
    if abs((now - signed_at).total_seconds()) > MAX_SKEW_S or stamp[:8] != day:
        raise SqsError(
            "SignatureDoesNotMatch",
            f"Signature expired or not yet valid: {stamp} is more than 15 minutes from "
            f"{now.strftime('%Y%m%dT%H%M%SZ')}.",
        )
    signed_names = parsed.group("signed").split(";")
    if "host" not in signed_names:
        raise SqsError("IncompleteSignature", "The host header must be signed.")
    # botocore on first use only: a server whose endpoint checks no signature (or serves
    # no SQS at all) does not carry it.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = AWSRequest(
        method=request.method,
        url=request.url,
        headers={name: ",".join(header_map.get(name, [])) for name in signed_names},
        data=request.body,
    )
    signed.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key_id, secret), service, region)
    canonical = signer.canonical_request(signed)
    expected = signer.signature(signer.string_to_sign(signed, canonical), signed)
    if not hmac.compare_digest(expected, parsed.group("signature")):
        raise SqsError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    return key_id


class SqsBindRefused(Exception):
    """The endpoint cannot serve as asked; the message says what to set instead."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def sqs_credentials(
    host: str, verify_on_loopback: bool, environ: Mapping[str, str]
) -> KeyRing | None:
    """The credentials whose signatures the endpoint on ``host`` verifies, or None where
    it accepts any signature (loopback, unless asked). Beyond loopback the workers'
    secret must be the operator's own: the well-known one would let anyone in."""
    if is_loopback(host) and not verify_on_loopback:
        return None
    if not is_loopback(host) and not environ.get(SECRET_ENV, "").strip():
        raise SqsBindRefused(
            f"refusing to serve the SQS endpoint on {host}: it is not a loopback address, "
            f"so it verifies SigV4 signatures and needs a secret for the workers' "
            f"credentials. Set {SECRET_ENV} (for example to the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`), or serve "
            "it on 127.0.0.1 (--sqs-host)"
        )
    try:
        return load_credentials(environ)
    except (OSError, ValueError) as exc:
        message = f"cannot read the SQS credentials ({CREDENTIALS_FILE_ENV}): {exc}"
        raise SqsBindRefused(message) from None
