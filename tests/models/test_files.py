"""`atomic_write`: the old file or the new one, never a part; `durable` flushes both to disk."""

from __future__ import annotations

import os

import pytest

from msfkit.models import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def half(tmp):
        tmp.write_text("ne")
        raise ValueError("stopped half way")

    with pytest.raises(ValueError):
        files.atomic_write(path, half)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("durable", [False, True])
def test_durable_flushes_the_file_before_its_rename_and_the_folder_after(tmp_path, monkeypatch, durable):
    path, synced = tmp_path / "a.txt", []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    files.atomic_write(path, lambda tmp: tmp.write_text("new"), durable=durable)
    assert path.read_text() == "new"
    if durable:
        assert len(synced) == 2 and ".a.txt.tmp" in synced[0] and synced[1] == str(tmp_path)
    else:
        assert synced == []
