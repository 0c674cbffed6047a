"""What the entry points import: `perpkit localnet` starts without the SDK's heavy parts (issue 11, start-up)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

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


# Ctrl-C while the command is still importing (before cli.main's try): the child interrupts itself from an
# import hook, deterministically, as the named module starts loading.  Python's own start-up (site, and the
# `import re` of pip's console-script wrapper) runs before any perpkit code: an interrupt there is Python's.
_INTERRUPT_DURING_IMPORT = """
import os, runpy, signal, sys

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

module, script = sys.argv[1], sys.argv[2]
sys.meta_path.insert(0, Interrupt())
sys.argv = [script, *sys.argv[3:]]
import pkgutil, re  # what pip's wrapper imports before perpkit's, and what run_path does
runpy.run_path(script, run_name="__main__")
"""
URL = "http://127.0.0.1:9"  # refused at once: were the hook never to fire, the command would fail, not hang


@pytest.mark.parametrize(
    "module", ["argparse", "pathlib", "perpkit.cli_args", "perpkit.keyfile", "perpkit.operator", "solders.keypair"]
)
def test_ctrl_c_while_importing_is_one_line(module: str) -> None:
    script = Path(sys.executable).with_name("perpkit")  # the console script pip wrote
    if not script.exists():
        pytest.skip(f"no console script at {script}")
    command = [sys.executable, "-c", _INTERRUPT_DURING_IMPORT, module, str(script), "market", "list", "--url", URL]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == "perpkit: error: interrupted\n"
    assert result.returncode == 130
