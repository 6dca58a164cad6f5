"""Event keys and the API token: checked in constant time, never logged or echoed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from ..errors import ConfigError


def _digest(secret: str) -> bytes:
    # comparing digests keeps the time independent of the secrets' lengths too
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Credentials:
    """What the server accepts. In dev mode every event key is accepted and the API is open."""

    def __init__(self, *, dev: bool, event_keys: Sequence[str], api_token: str | None) -> None:
        if not dev and not api_token:
            raise ConfigError(
                "outside dev mode the API needs a token: pass --api-token or set "
                "STEPSTONE_API_TOKEN"
            )
        if not dev and not any(event_keys):
            raise ConfigError(
                "outside dev mode events need a key: pass --event-key or set STEPSTONE_EVENT_KEYS"
            )
        self.dev = dev
        self._keys = [_digest(k) for k in event_keys if k]
        self._token = None if api_token is None else _digest(api_token)

    @property
    def api_open(self) -> bool:
        return self._token is None

    def event_key_ok(self, key: str) -> bool:
        if self.dev:
            return True
        given = _digest(key)
        # compare with every key, so the time does not tell which one nearly matched
        return any([hmac.compare_digest(given, k) for k in self._keys])

    def token_ok(self, authorization: str | None) -> bool:
        if self._token is None:
            return True
        if authorization is None:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(token.strip()), self._token)
