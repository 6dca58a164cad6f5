"""Signing keys, signatures and bearer tokens, checked against the SDKs' own formulas."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from stepstone.sdk import signing

KEY_TEXT = "signkey-prod-" + "ab12" * 16


def test_a_key_is_parsed_and_malformed_ones_are_refused() -> None:
    key = signing.parse_signing_key(KEY_TEXT)
    assert (key.env, key.hex, key.text) == ("prod", "ab12" * 16, KEY_TEXT)
    for bad in ("ab12" * 16, "signkey-prod-", "signkey-prod-xyz", "signkey-prod-abc", "key-a-ab"):
        with pytest.raises(signing.SigningKeyError, match="signkey-<env>-<hex>"):
            signing.parse_signing_key(bad)


def test_the_signature_is_over_the_canonical_body_and_t_keyed_by_the_hex_text() -> None:
    key = signing.parse_signing_key(KEY_TEXT)
    body = signing.canonical_json({"b": [1.0, "é"], "a": {"z": None, "y": 2}})
    assert body == '{"a":{"y":2,"z":null},"b":[1,"é"]}'.encode()
    header = signing.sign(body, key, now=1700000000.7)
    expected = hmac.new(("ab12" * 16).encode(), body + b"1700000000", hashlib.sha256).hexdigest()
    assert header == f"t=1700000000&s={expected}"
    signing.verify(body, header, key, now=1700000100)


def test_bad_signatures_are_refused() -> None:
    key = signing.parse_signing_key(KEY_TEXT)
    other = signing.parse_signing_key("signkey-prod-" + "cd34" * 16)
    body = b'{"ok":true}'
    header = signing.sign(body, key, now=1700000000)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(body, header, other, now=1700000000)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(b'{"ok":false}', header, key, now=1700000000)
    with pytest.raises(signing.SignatureError, match="no X-Inngest-Signature"):
        signing.verify(body, None, key)
    with pytest.raises(signing.SignatureError, match="malformed"):
        signing.verify(body, "s=abc", key)
    with pytest.raises(signing.SignatureError, match="from now"):
        signing.verify(body, header, key, now=1700000000 + 301)
    signing.verify(body, header, key, now=1700000000 + 301, max_skew=None)


def test_bearer_tokens_in_both_sdk_forms() -> None:
    key = signing.parse_signing_key(KEY_TEXT)
    token = hashlib.sha256(bytes.fromhex("ab12" * 16)).hexdigest()
    assert signing.bearer_token(key) == token
    assert signing.check_bearer(f"Bearer {token}", key)  # py
    assert signing.check_bearer(f"Bearer signkey-prod-{token}", key)  # js
    assert signing.check_bearer(f"bearer {token.upper()}", key)
    assert not signing.check_bearer(None, key)
    assert not signing.check_bearer("Bearer undefined", key)
    assert not signing.check_bearer(f"Basic {token}", key)
    assert not signing.check_bearer(f"Bearer {token[:-1]}0", key)


def test_large_integers_that_json_canonicalization_cannot_hold() -> None:
    with pytest.raises(ValueError, match="canonicalized"):
        signing.canonical_json(json.loads('{"n": 9007199254740993}'))
