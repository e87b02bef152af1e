"""Secrets kept in files (tokens, broker passwords), so configs can be shared without them."""

from __future__ import annotations

from pathlib import Path


def read_secret_file(path: Path, what: str) -> str:
    """The first line of ``path``, stripped; an error that names the file when it is unreadable or empty."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ValueError(f"cannot read {what} {path}: {error}") from error
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ValueError(f"{what} {path} is empty")
    return secret
