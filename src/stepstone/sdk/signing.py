"""Signing keys, request signatures and bearer tokens, as the official SDKs check them.

- A signing key reads `signkey-<env>-<hex>`.
- A call request carries `X-Inngest-Signature: t=<unix seconds>&s=<hex HMAC-SHA256>`:
  the key is the signing key without its `signkey-<env>-` prefix, as UTF-8 text; the
  message is the RFC 8785 canonical form of the JSON body followed by the decimal `t`.
  Both SDKs re-canonicalize the body they got before checking, so the server signs the
  canonical bytes and sends exactly those.
- An SDK signs its answers the same way over the raw answer body.
- SDK-to-server calls carry `Bearer <hex SHA-256 of the hex-decoded key>`, the npm SDK
  with the `signkey-<env>-` prefix in front, the Python SDK without.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import rfc8785

from ..errors import ConfigError

SIGNATURE_HEADER = "X-Inngest-Signature"
MAX_SKEW = 300.0  # seconds: the npm SDK refuses older or newer signatures
_KEY = re.compile(r"^signkey-(\w+?)-([0-9a-fA-F]+)$")
_PREFIX = re.compile(r"^signkey-\w+?-")


class SigningKeyError(ConfigError):
    """A signing key that does not read `signkey-<env>-<hex>`."""


class SignatureError(ValueError):
    """A signature that is missing, malformed, stale or does not match."""


@dataclass(frozen=True)
class SigningKey:
    env: str
    hex: str

    @property
    def text(self) -> str:
        return f"signkey-{self.env}-{self.hex}"

    @property
    def secret(self) -> bytes:
        """The HMAC key of signatures: the hex part, as text."""
        return self.hex.encode("utf-8")


def parse_signing_key(text: str, *, what: str = "the signing key") -> SigningKey:
    match = _KEY.match(text.strip())
    if match is None or len(match.group(2)) % 2:
        raise SigningKeyError(
            f"{what} must read signkey-<env>-<hex> (an even number of hex digits), "
            f"e.g. signkey-prod-{'0' * 64}"
        )
    return SigningKey(match.group(1), match.group(2))


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) form of a JSON value: what a call request sends and signs."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"the call request cannot be canonicalized: {exc}") from None


def _mac(key: SigningKey, message: bytes, timestamp: int) -> str:
    mac = hmac.new(key.secret, message, hashlib.sha256)
    mac.update(str(timestamp).encode("utf-8"))
    return mac.hexdigest()


def sign(message: bytes, key: SigningKey, *, now: float | None = None) -> str:
    """The `X-Inngest-Signature` value for `message` (a canonical request body or an answer)."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp}&s={_mac(key, message, timestamp)}"


def verify(
    message: bytes,
    header: str | None,
    key: SigningKey,
    *,
    now: float | None = None,
    max_skew: float | None = MAX_SKEW,
) -> None:
    """Check a signature over `message` (an SDK's raw answer body); SignatureError if bad."""
    if not header:
        raise SignatureError(f"the answer has no {SIGNATURE_HEADER} header")
    fields = parse_qs(header, keep_blank_values=True)
    stamp, signature = fields.get("t", [""])[0], fields.get("s", [""])[0]
    if not stamp.isdigit() or not signature:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is malformed: {header!r}")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if max_skew is not None and abs(current - timestamp) > max_skew:
        raise SignatureError(
            f"the signature's time t={timestamp} is more than {max_skew:.0f} s from now"
        )
    if not hmac.compare_digest(signature.lower(), _mac(key, message, timestamp)):
        raise SignatureError("the signature does not match the body and the signing key")


def bearer_token(key: SigningKey) -> str:
    """The hex SHA-256 of the hex-decoded key: what SDKs send as `Authorization: Bearer`."""
    return hashlib.sha256(bytes.fromhex(key.hex)).hexdigest()


def check_bearer(authorization: str | None, key: SigningKey) -> bool:
    """Whether an `Authorization` header carries the key's token (with or without prefix)."""
    if not authorization:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    token = _PREFIX.sub("", token.strip()).lower()
    return hmac.compare_digest(token.encode(), bearer_token(key).encode())
