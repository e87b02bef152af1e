"""Whole-file rewrites of small state files: the old content or the new, never a half-written file left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from ioc_common.atomic_files import replace_text


@pytest.mark.parametrize("durable", [False, True])
def test_the_new_text_replaces_the_old_and_no_temporary_file_stays(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "state" / "cam-1.json"
    replace_text(path, "old", durable=durable)
    replace_text(path, "mới / new", durable=durable)
    assert path.read_text(encoding="utf-8") == "mới / new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["cam-1.json"]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    replace_text(path, "old")
    (tmp_path / "status.json.tmp").mkdir()  # the temporary file cannot be written
    with pytest.raises(IsADirectoryError):
        replace_text(path, "new")
    assert path.read_text(encoding="utf-8") == "old"
