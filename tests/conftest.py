"""Shared fixtures and helpers of the perpkit test suite."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAM_DIR = ROOT / "program"
TOOLS_DIR = PROGRAM_DIR / "tools"
sys.path.insert(0, str(TOOLS_DIR))

pytest_plugins = ["perpkit.pytest_plugin", "pytester"]

STRICT = os.environ.get("PERPKIT_STRICT") == "1"
"""In CI every tool must be present: a missing one fails instead of skipping."""


def require_tool(name: str) -> str:
    """Path of a command-line tool, or skip (fail under PERPKIT_STRICT=1) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {name}); .ci/run installs it"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def section(data: bytes, name: str) -> tuple[int, int]:
    """(offset of the section's header, offset of its contents) in an ELF file."""
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    for index, sec in enumerate(elf.iter_sections()):
        if sec.name == name:
            return elf["e_shoff"] + index * elf["e_shentsize"], sec["sh_offset"]
    raise KeyError(name)
