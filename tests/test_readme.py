"""Every Python block in README.md runs, as a new user would run it: saved to a file, then ``python file``.

A block that talks to an endpoint names ``http://127.0.0.1:8899`` (perpkit
localnet's default); the test points it at the session's localnet instead. A
block that starts with "# the default lane" needs SBPFv3 and skips on the
anchorpy lane.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, require_sbpf_v3_runtime

BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    code = BLOCKS[index]
    if code.startswith("# the default lane"):
        require_sbpf_v3_runtime()
    if "127.0.0.1:8899" in code:
        code = code.replace("http://127.0.0.1:8899", request.getfixturevalue("perps_rpc_url"))
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, f"README block {index} failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"
