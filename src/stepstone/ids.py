"""Identifiers: time-ordered ids for runs and events, hashed ids for steps."""

from __future__ import annotations

import hashlib
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id() -> str:
    """A ULID: 26 characters that sort by creation time, monotonic within a process."""
    global _last_ms, _last_rand
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_rand = ms, rand
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


MAX_STEP_ID = 256  # characters


def hash_step_id(step_id: str) -> str:
    return hashlib.sha1(step_id.encode("utf-8")).hexdigest()


class StepIdCounter:
    """Gives the n-th use of an id in one run its own hashed id: the SHA-1 of `id`, `id:1`,
    `id:2`, ... (the key the reference SDKs use, so saved state is found by id)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def next(self, step_id: str) -> tuple[int, str]:
        """(which use of `step_id` this is, from 0; its hashed id)."""
        occurrence = self._seen.get(step_id, 0)
        self._seen[step_id] = occurrence + 1
        key = step_id if occurrence == 0 else f"{step_id}:{occurrence}"
        return occurrence, hash_step_id(key)
