"""The provider specs the tests validate against are in the repository, as SOURCES.md says."""

from __future__ import annotations

import hashlib
import json
import re

import specs


def test_every_spec_the_tests_load_is_in_the_repo_with_its_recorded_checksum() -> None:
    sources = (specs.SPECS / "SOURCES.md").read_text()
    for family, name in specs.FILES.items():
        path = specs.SPECS / name
        assert path.is_file(), f"{path} is missing: a clone must carry what its tests need"
        row = next(line for line in sources.splitlines() if line.startswith(f"| `{name}` |"))
        recorded = re.findall(r"`([0-9a-f]{64})`", row)[-1]  # the last checksum in a row is the file's own
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded, name
        doc = json.loads(path.read_bytes())
        assert doc["openapi"].startswith("3."), (family, doc["openapi"])
    assert specs.SPECS.parent.joinpath("tests").is_dir(), "specs/ sits at the top of the repository"
