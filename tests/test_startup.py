"""What the entry points import: `perpkit localnet` starts without the SDK's heavy parts (issue 11, start-up)."""

from __future__ import annotations

import subprocess
import sys

import perpkit


def test_every_exported_name_resolves() -> None:
    for name in perpkit.__all__:
        assert getattr(perpkit, name) is not None, name


def test_the_command_line_and_the_localnet_import_neither_numpy_nor_the_client() -> None:
    code = (
        "import sys, perpkit.cli, perpkit.localnet.launcher\n"
        "heavy = [m for m in ('numpy', 'perpkit.client', 'perpkit.crank', 'perpkit.testing') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
