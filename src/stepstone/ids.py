"""Identifiers: time-ordered ids for runs and events, hashed ids for steps."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# every 10-bit group as its two characters, and where each of a ULID's 13 groups starts
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))
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
    return encode_ulid((ms << 80) | (rand & ((1 << 80) - 1)))


def encode_ulid(value: int) -> str:
    """The 26 characters of a 128-bit value, in Crockford's base32, most significant first:
    two characters at a time (every run and event gets ids; a loop over the 26 characters
    was a tenth of a short run's cost)."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


MAX_STEP_ID = 256  # characters


# the runs of a function hash the same few step ids, once per use and again on every
# replay: a hit costs a tenth of a SHA-1 (0.06 against 0.6 µs); 1,024 ids of at most 256
# characters bound what it holds
@functools.lru_cache(maxsize=1024)
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
