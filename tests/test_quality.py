"""Static checks: mypy --strict on the package, ruff on everything Python."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def check(*cmd: str) -> None:
    result = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    check("mypy", "--strict", "client/perpkit")


def test_ruff() -> None:
    check("ruff", "check", "client", "tests", "program/tools", "bench")
    check("ruff", "format", "--check", "client", "tests", "program/tools", "bench")
