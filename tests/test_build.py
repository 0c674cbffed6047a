"""The program build is deterministic: fixtures/perps.so (SBPFv3) and perps-v0.so are what the sources build to."""

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
    out, out_v0 = tmp_path / "perps.so", tmp_path / "perps-v0.so"
    run(["make", "-C", str(copy), f"CLANG={clang}", f"PYTHON={sys.executable}", f"OUT={out}", f"OUT_V0={out_v0}"])
    for built in (out, out_v0):
        assert built.read_bytes() == (ROOT / "fixtures" / built.name).read_bytes(), (
            f"fixtures/{built.name} is stale: run make -C program and commit it"
        )
