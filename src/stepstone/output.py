"""What stepstone prints and logs: passwords redacted, control characters escaped, and no
data ever read as terminal markup.

Event data, error messages and request paths come from outside: a `[/]` in one made rich
raise MarkupError, `[link=...]` turned into a link, and an escape sequence or a NUL went
to the terminal or the log as it was.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit, urlunsplit

from rich.markup import escape

REDACTED = "***"
# libpq's conninfo form: password=secret, password = 'it''s secret', sslpassword=...
_CONNINFO_PASSWORD = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)
# the direction overrides that can make text read other than it is
_BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def redact_url(url: str) -> str:
    """The database URL (or libpq conninfo) without any password, for logs and messages."""
    if "://" not in url:
        return _CONNINFO_PASSWORD.sub(rf"\1{REDACTED}", url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hosts = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{hosts}"
    except ValueError:  # not even a URL: show none of it
        return f"{url.partition('://')[0]}://{REDACTED}"
    if netloc == parts.netloc and "password" not in unquote(parts.query).lower():
        return url
    # a stray "?" inside the query (`...&port=1?password=x`) starts a pair too
    pieces = re.split(r"([&?;])", parts.query)
    for i, pair in enumerate(pieces):
        key, sep, _value = pair.partition("=")
        if sep and "password" in unquote(key).lower():
            pieces[i] = f"{key}={REDACTED}"
    return urlunsplit(parts._replace(netloc=netloc, query="".join(pieces)))


def printable(text: str) -> str:
    """`text` with control characters (NUL, escape sequences, carriage returns...) and bidi
    overrides written as escapes: one line, read as it is."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if code in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def literal(value: object) -> str:
    """`value` to put into a rich markup string: printed as it is, never parsed."""
    return escape(printable(str(value)))
