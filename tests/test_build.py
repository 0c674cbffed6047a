"""The program build is deterministic and fixtures/perps.so is what the sources build to."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from conftest import PROGRAM_DIR, ROOT, require_tool, run


def test_rebuild_elsewhere_is_byte_identical(tmp_path: Path) -> None:
    """Same source, same bytes: built from a copy at another path, it equals the committed fixture."""
    clang = require_tool("clang-19")
    copy = tmp_path / "elsewhere" / "program"
    shutil.copytree(PROGRAM_DIR, copy, ignore=shutil.ignore_patterns("build"))
    out = tmp_path / "perps.so"
    run(["make", "-C", str(copy), f"CLANG={clang}", f"PYTHON={sys.executable}", f"OUT={out}"])
    assert out.read_bytes() == (ROOT / "fixtures" / "perps.so").read_bytes(), (
        "fixtures/perps.so is stale: run make -C program and commit it"
    )
