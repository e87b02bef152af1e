"""The canonical form of an audit entry and its chain hash, so anyone can recompute it.

The form is the JSON Canonicalization Scheme (RFC 8785, "JCS"): object keys sorted by their
UTF-16 code units, no whitespace, strings escaped as ECMAScript's ``JSON.stringify`` does
(``\\b \\t \\n \\f \\r \\" \\\\``, other control characters as lowercase ``\\u00xx``, everything else
literal UTF-8), and numbers written as ECMAScript writes a double. JCS is chosen over an ad-hoc
``json.dumps(sort_keys=True)`` because it has libraries in most languages (an auditor can verify
with their own tools) and because it fixes the number form: the target is stored as ``jsonb``,
which re-prints numbers (``1e20`` comes back as ``100000000000000000000``); JCS maps both to the
same text, so the hash survives the round trip through the database.

An entry's hash::

    hash = lowercase hex of SHA-256( UTF-8( JCS({
        "seq": 42, "time": "2025-06-01T12:00:00.123456Z", "actor": "...", "role": "...",
        "action": "...", "target": {...}, "reason": "..." | null, "result_count": 7 | null,
        "client": "..." | null, "prev_hash": "<hash of entry 41, or 64 zeros for entry 1>"
    }) ) )

``time`` is UTC with exactly six fraction digits and a ``Z``. JCS numbers are doubles: an integer
beyond +-(2**53 - 1) is hashed as its nearest double (store big identifiers as strings), and floats
must be finite.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first entry."""
MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalFormError(ValueError):
    """A value has no canonical form (NaN, a huge integer, a non-JSON type, a lone surrogate)."""


def _number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(value):
        raise CanonicalFormError(f"number {value!r} has no JSON form")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digits that round-trip, as ECMAScript requires.
    exact = Decimal(repr(abs(value))).normalize()
    _, digit_tuple, exponent = exact.as_tuple()
    assert isinstance(exponent, int)  # finite: never 'n' / 'N' / 'F'
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        power = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if power >= 0 else '-'}{abs(power)}"
    return sign + text


def _string(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise CanonicalFormError(f"string {value[:40]!r} is not valid Unicode (lone surrogate)") from error
    # Python's escaping with ensure_ascii=False matches JSON.stringify: short escapes, lowercase \u00xx.
    return json.dumps(value, ensure_ascii=False)


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", errors="surrogatepass")


def _integer(value: int) -> str:
    if abs(value) <= MAX_SAFE_INTEGER:
        return str(value)
    # JCS reads every number as a double: a big integer is hashed as its nearest double (jsonb gives a
    # large double back as an integer, e.g. 1e20 as 100000000000000000000, which maps to the same text).
    try:
        return _number(float(value))
    except OverflowError as error:
        raise CanonicalFormError(f"integer {value} is too large for a JSON number; store it as a string") from error


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _integer(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    raise CanonicalFormError(f"{type(value).__name__} has no JSON form; convert it first (e.g. to a string)")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise CanonicalFormError("object keys must be strings")
        out.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_key)):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(_scalar(value))


def canonical_json(value: Any) -> str:
    """The RFC 8785 text of a JSON-like value (dict, list/tuple, str, int, float, bool, None)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def format_time(time: dt.datetime) -> str:
    """UTC, microseconds, ``Z``: the one textual form of an entry's time."""
    if time.utcoffset() is None:
        raise CanonicalFormError("audit time must carry a timezone")
    return time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hash_fields(fields: dict[str, Any]) -> str:
    """SHA-256 (lowercase hex) of the canonical JSON of an entry's fields (see the module doc)."""
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
