"""Small state files rewritten whole: a reader (or a restart after a crash) sees the old file or the new one,
never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def replace_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Write ``text`` beside ``path`` and rename it over ``path`` (creating the folder); ``durable`` also syncs the
    data to disk before the rename, for state that must survive a power cut. ``OSError`` is the caller's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)
