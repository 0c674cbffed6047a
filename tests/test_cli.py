"""The command line: the demo runs on the embedded runtime; errors are one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from perpkit.cli import main


def test_demo_prints_market_and_oracle(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "price 64,250.000000" in out
    assert "capacity 1024 positions" in out
    assert "oracle now 63,980.000000" in out
    assert "Unauthorized (6015)" in out


def test_demo_with_a_bad_program_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.so"
    bad.write_bytes(b"not a program")
    result = subprocess.run(
        [sys.executable, "-m", "perpkit.cli", "demo", "--program", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"perpkit: error: {bad}: 13 bytes is too short for an ELF file"
