"""The command line: the demo runs on the embedded runtime; errors are one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from perpkit.cli import main


def test_demo_prints_the_scenario_summary(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """In-process; tests/test_scenario_cli.py runs it as a command, with the plots."""
    assert main(["demo", "--out", str(tmp_path), "--no-plots", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "scenario crash (seed " in out and "positions were liquidated" in out
    assert (tmp_path / "summary.md").is_file() and not list(tmp_path.glob("*.png"))


def test_demo_with_a_bad_program_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.so"
    bad.write_bytes(b"not a program")
    result = subprocess.run(
        [sys.executable, "-m", "perpkit.cli", "demo", "--program", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"perpkit: error: {bad}: 13 bytes is too short for an ELF file"
