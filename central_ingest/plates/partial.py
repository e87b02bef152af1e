"""Partial-plate search: keyed, truncated 3-gram tokens of the compact plate, and witness patterns.

A plate is reduced to its *compact* form (letters and digits, upper-case: "30A-123.45" -> "30A12345").
Each character 3-gram of it ("30A", "0A1", "A12", ...) becomes a token: HMAC-SHA256 of the gram under
the index key, truncated to ``TOKEN_BITS`` bits, so that different grams share a token on purpose. The
tokens of a row are stored as a set (sorted, duplicates removed: the order of grams in the plate is not
kept) padded with random tokens to ``PADDED_TOKENS``, so the number of tokens does not tell the plate's
length. A GIN index on the int[] column finds the rows holding all the tokens of a query.

A witness pattern is written like a plate, with ``?`` for one unknown character and ``*`` for any run
(dashes, dots and spaces are ignored, as in the compact form). It needs a run of at least
``MIN_KNOWN_RUN`` known characters: only such runs give tokens. Candidates found by tokens are decrypted
and checked against the exact pattern server-side (``PlatePattern.matches``), so the truncation never
returns a wrong row: it only costs decryptions. ``docs/plate_vault.md`` states what the tokens leak.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_BITS = 12
"""4096 token values for ~47,000 possible grams (36^3): each token stands for about 11 grams."""
GRAM = 3
MIN_KNOWN_RUN = GRAM
PADDED_TOKENS = 12
"""Token count of every row (a 16-character compact plate has 14 grams, longer than any Vietnamese plate)."""
GRAM_LABEL = b"ioc.plate.gram.v1\x00"
_COMPACT = re.compile(r"[^0-9A-Z]")
_PATTERN_SEPARATORS = re.compile(r"[-.\s]")
_PATTERN_ALLOWED = re.compile(r"^[0-9A-Z?*]+$")


class PatternError(ValueError):
    """A witness pattern that cannot be searched; the message says how to write one."""


def compact_plate(plate: str) -> str:
    """Letters and digits only, upper-case: the form the blind index and the tokens are computed on."""
    return _COMPACT.sub("", plate.upper())


def gram_token(index_key: bytes, gram: str) -> int:
    digest = hmac.digest(index_key, GRAM_LABEL + gram.encode("ascii"), "sha256")
    return int.from_bytes(digest[:4], "big") >> (32 - TOKEN_BITS)


def grams(text: str) -> list[str]:
    return [text[i : i + GRAM] for i in range(len(text) - GRAM + 1)]


def plate_tokens(index_key: bytes, compact: str) -> list[int]:
    """The stored token set of a plate: its gram tokens, deduplicated, sorted, padded with random tokens."""
    tokens = {gram_token(index_key, gram) for gram in grams(compact)}
    while len(tokens) < PADDED_TOKENS:
        spare = secrets.token_bytes(2 * PADDED_TOKENS)
        for i in range(0, len(spare), 2):
            if len(tokens) == PADDED_TOKENS:
                break
            tokens.add(int.from_bytes(spare[i : i + 2], "big") >> (16 - TOKEN_BITS))
    return sorted(tokens)


@dataclass(frozen=True)
class PlatePattern:
    """A parsed witness pattern: the compact text with ``?``/``*``, its known runs and a full-match regex."""

    text: str
    known_runs: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, pattern: str) -> PlatePattern:
        text = _PATTERN_SEPARATORS.sub("", pattern.upper())
        if not text or not _PATTERN_ALLOWED.fullmatch(text):
            raise PatternError(
                f"pattern {pattern!r}: use letters, digits, '?' (one unknown character) and '*' (any run), "
                "e.g. 30A-1??.45 or *12345"
            )
        text = re.sub(r"\*+", "*", text)
        runs = tuple(run for run in re.split(r"[?*]", text) if run)
        if not any(len(run) >= MIN_KNOWN_RUN for run in runs):
            raise PatternError(
                f"pattern {pattern!r} needs at least {MIN_KNOWN_RUN} known characters in a row "
                "(shorter runs would match too many plates to search privately)"
            )
        regex = re.compile("".join("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in text))
        return cls(text=text, known_runs=runs, regex=regex)

    def matches(self, compact: str) -> bool:
        return self.regex.fullmatch(compact) is not None

    def tokens(self, index_key: bytes) -> list[int]:
        """Tokens every matching plate holds: those of the grams of each known run of >= 3 characters."""
        return sorted({gram_token(index_key, gram) for run in self.known_runs for gram in grams(run)})
