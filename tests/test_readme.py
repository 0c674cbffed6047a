"""README.md's opening: the two commands CI extracts, and the demo output it shows.

Every code block of README.md (and docs/) is run by tests/test_docs.py; this file holds what only the
README promises: its first two lines are the commands ``.ci/run`` finds by pattern (the main job and the
test command), and the output it quotes is what ``perpkit demo`` prints.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, require_sbpf_v3_runtime

README = (ROOT / "README.md").read_text()
FIRST_BLOCK = re.search(r"^```sh\n(.*?)^```", README, re.M | re.S)
MAIN_JOB = "python3 -m venv .venv && .venv/bin/pip install -e '.[plots]' && .venv/bin/perpkit demo"


def _ci_line(pattern: str) -> str:
    """The line .ci/run takes (grep -m1 -E PATTERN README.md), without its comment."""
    line = next(line for line in README.splitlines() if re.search(pattern, line))
    return re.sub(r"\s*#.*$", "", line)


def test_the_first_block_is_the_main_job_then_the_tests() -> None:
    assert FIRST_BLOCK is not None
    first, second = FIRST_BLOCK.group(1).splitlines()[:2]
    assert _ci_line(r"^python3 .*perpkit demo") == MAIN_JOB and first.startswith(MAIN_JOB)
    test_command = _ci_line(r"^python3 .*\.venv/bin/pytest")
    assert second.startswith(test_command) and test_command.endswith("--perps-backend all")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 -E '^python3 .*perpkit demo' README.md" in ci
    assert "grep -m1 -E '^python3 .*\\.venv/bin/pytest' README.md" in ci


def test_the_quoted_demo_output_is_what_perpkit_demo_prints(tmp_path: Path) -> None:
    """The README quotes a default-lane run; the anchorpy lane's runtime costs other CU."""
    require_sbpf_v3_runtime()
    quoted = re.search(r"^<!-- output -->\n```text\n(.*?)^```", README, re.M | re.S)
    assert quoted is not None, "README.md quotes no demo output"
    result = subprocess.run([sys.executable, "-m", "perpkit.cli", "demo", "--quiet"], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    def masked(text: str) -> list[str]:
        """The wall time is the machine's; everything else, compute units included, is the seed's."""
        lines = [line.rstrip() for line in text.strip().splitlines()]
        return [re.sub(r" in [\d.]+ s$", " in N s", line) for line in lines]

    assert masked(result.stdout) == masked(quoted.group(1))
    for plot in ("prices", "open_interest", "liquidations", "balances", "funding", "liquidation_prices"):
        assert (tmp_path / "perpkit-reports" / "demo" / f"{plot}.png").stat().st_size > 0
