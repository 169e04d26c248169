"""Files overt writes beside user-chosen paths never write through a planted name.

The tile store's temporary files were predictable and followed symlinks (issue 8);
the same defect sat in the publisher's bundle and scan-cache writes and in the
PSIRT key's save, which wrote the private key through ``KEY.tmp``. Every one now
goes through ``overt.log.fs.atomic_write`` (random name, ``O_EXCL|O_NOFOLLOW``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from overt.disclosure.crypto import PSIRTKey
from overt.errors import ConfigError
from overt.log.fs import atomic_write


def _plant(directory: Path, names: list[str], target: Path) -> None:
    for name in names:
        os.symlink(target, directory / name)


def test_psirt_key_is_not_written_through_a_planted_tmp_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "world-readable.txt"
    victim.write_text("untouched\n")
    key = tmp_path / "psirt.key"
    _plant(tmp_path, ["psirt.key.tmp"], victim)
    PSIRTKey.generate().save(key)
    assert victim.read_text() == "untouched\n"
    assert key.stat().st_mode & 0o777 == 0o600
    assert PSIRTKey.load(key) is not None


def test_psirt_key_save_never_replaces_an_existing_key(tmp_path: Path) -> None:
    key = tmp_path / "psirt.key"
    first = PSIRTKey.generate()
    first.save(key)
    before = key.read_bytes()
    with pytest.raises(ConfigError, match="exists"):
        PSIRTKey.generate().save(key)
    assert key.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["psirt.key"]  # no temporary file left


def test_exclusive_write_refuses_an_existing_name_and_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    link = tmp_path / "key"
    os.symlink(victim, link)
    with pytest.raises(FileExistsError):
        atomic_write(link, b"secret", 0o600, exclusive=True)
    assert victim.read_text() == "untouched\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "victim"]
