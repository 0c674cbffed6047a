"""``perpkit demo`` and ``perpkit scenario``: the main job from the command line, its report, its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perpkit.localnet.process import LocalnetProcess

ROOT = Path(__file__).resolve().parents[1]
PERPKIT = [sys.executable, "-m", "perpkit.cli"]
PLOTS = {"prices.png", "open_interest.png", "liquidations.png", "balances.png", "funding.png",
         "liquidation_prices.png"}  # fmt: skip


def perpkit(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PERPKIT, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_the_demo_ends_with_the_summary_and_the_plots_on_disk(tmp_path: Path) -> None:
    done = perpkit("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "fell 25" in out and "in one step, a gap" in out
    assert "positions were liquidated" in out and "as the model predicted" in out
    assert "report   perpkit-reports/demo/summary.md" in out
    folder = tmp_path / "perpkit-reports" / "demo"
    assert {p.name for p in folder.glob("*.png")} >= PLOTS
    for plot in PLOTS:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads((folder / "summary.json").read_text())
    assert figures["traders"] == 400 and figures["positions_liquidated"] > 100
    assert figures["predicted_batches"] == figures["batches"] > 0
    # progress while it ran (stderr is not a terminal here: one line per tenth of the run)
    assert "perpkit scenario: crash" in done.stderr and done.stderr.count("  step ") >= 10
    assert "Traceback" not in done.stderr


def test_a_scenario_file_runs_and_its_report_redraws(tmp_path: Path) -> None:
    out = tmp_path / "replay"
    done = perpkit("scenario", "run", str(ROOT / "examples/scenarios/flash_crash_replay.toml"), "--out", str(out),
                   "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert (out / "summary.md").is_file() and {p.name for p in out.glob("*.png")} >= PLOTS
    for plot in out.glob("*.png"):
        plot.unlink()
    again = perpkit("scenario", "redraw", str(out))
    assert again.returncode == 0, again.stderr
    assert {p.name for p in out.glob("*.png")} >= PLOTS


def test_a_seed_changes_the_run(tmp_path: Path) -> None:
    scenario = str(ROOT / "examples/scenarios/short_squeeze.toml")
    runs = []
    for seed in ("1", "1", "2"):
        done = perpkit("scenario", "run", scenario, "--seed", seed, "--out", str(tmp_path / seed), "--quiet",
                       "--no-plots")  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads((tmp_path / seed / "result.json").read_text())
        runs.append([(s["index_price"], s["positions_liquidated"]) for s in result["steps"]])
    assert runs[0] == runs[1] != runs[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scenario", "run", "missing.toml"], "perpkit: error: cannot read the scenario missing.toml"),
        (["scenario", "run", "{bad}"], "unknown key colour"),
        (
            ["scenario", "run", "{good}", "--url", "http://127.0.0.1:1", "--keypair", "{key}"],
            "perpkit: error: cannot reach http://127.0.0.1:1",
        ),
        (
            ["scenario", "run", "{good}", "--url", "http://127.0.0.1:1", "--keypair", "none.json"],
            "perpkit: error: no keypair at none.json",
        ),
        (["scenario", "redraw", "nowhere"], "perpkit: error: "),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    from perpkit.keyfile import write_keypair

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ncolour = "red"\n')
    write_keypair(tmp_path / "id.json")
    good = str(ROOT / "examples/scenarios/slow_bleed.toml")
    args = [a.replace("{bad}", str(bad)).replace("{good}", good).replace("{key}", "id.json") for a in args]
    done = perpkit(*args, cwd=tmp_path, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("perpkit: error: "), done.stderr
    assert message in done.stderr


def test_on_a_localnet_over_rpc(tmp_path: Path) -> None:
    from perpkit.keyfile import write_keypair

    key = tmp_path / "id.json"
    write_keypair(key)
    small = tmp_path / "small.toml"
    small.write_text(
        'name = "rpc crash"\nseed = 3\n[market]\ninitial_margin_bps = 500\nmaintenance_margin_bps = 250\n'
        "book_capacity = 64\npool = 100_000\ninsurance = 100\n[traders]\ncount = 12\nlong_share = 0.75\n"
        "leverage = [4.0, 15.0]\n[price]\nhours = 0.5\nvolatility_per_day = 0.0\n[price.crash]\nat_hours = 0.2\n"
        "drop = 0.2\n"
    )
    with LocalnetProcess("--payer", str(key)) as node:
        done = perpkit("scenario", "run", str(small), "--url", node.url, "--keypair", str(key), "--out",
                       str(tmp_path / "r"), "--no-plots", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert figures["positions_liquidated"] > 0 and figures["predicted_batches"] == figures["batches"]
    assert "json-rpc" in figures["runtime"].lower() or "rpc" in figures["runtime"].lower()


def test_without_matplotlib_the_run_still_reports_and_says_how_to_get_plots(tmp_path: Path) -> None:
    blocker = tmp_path / "no_mpl"
    blocker.mkdir()
    (blocker / "matplotlib").mkdir()
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(blocker)}
    done = subprocess.run([*PERPKIT, "demo", "--out", str(tmp_path / "r"), "--quiet"], capture_output=True,
                          text=True, timeout=240, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "positions were liquidated" in done.stdout
    assert done.stderr.strip() == "perpkit: plots skipped: plots need matplotlib: pip install 'perpkit[plots]'"
    assert (tmp_path / "r" / "summary.md").is_file() and not list((tmp_path / "r").glob("*.png"))
