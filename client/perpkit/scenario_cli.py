"""``perpkit scenario run|redraw`` and ``perpkit demo``: scenarios from the command line, with progress and a report.

Imported only when one of those commands runs (``perpkit --help`` stays fast).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpkit.keyfile import DEFAULT_KEYPAIR

if TYPE_CHECKING:
    from perpkit.client import Client
    from perpkit.scenario import Scenario
    from perpkit.scenario_run import Progress

DEMO = Path(__file__).resolve().parent / "scenarios" / "crash.toml"
"""The built-in scenario ``perpkit demo`` runs."""
REPORTS = Path("perpkit-reports")


def add_run_arguments(parser: argparse.ArgumentParser, *, demo: bool = False) -> None:
    if not demo:
        parser.add_argument("file", type=Path, help="the scenario (TOML; see examples/scenarios/)")
        parser.add_argument("--url", default=None,
                            help="run on this JSON-RPC endpoint (it must move its clock: perpkit localnet); "
                                 "default: the embedded runtime")  # fmt: skip
        parser.add_argument("--keypair", type=Path, default=DEFAULT_KEYPAIR,
                            help=f"pays on --url (default: {DEFAULT_KEYPAIR})")  # fmt: skip
        parser.add_argument("--seed", type=int, default=None, help="override the file's seed")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"report folder (default: {REPORTS}/{'demo' if demo else '<scenario name>'})")  # fmt: skip
    parser.add_argument("--no-plots", action="store_true", help="write the summaries only")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "scenario"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _hours(seconds: int) -> str:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Bar:
    """A tqdm bar on a terminal; on anything else a plain line every tenth of the run."""

    def __init__(self, name: str, steps: int, quiet: bool) -> None:
        self.quiet, self.steps, self.next_line = quiet, steps, 0
        self.bar: Any = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=name, unit="step", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, p: Progress) -> None:
        said = (f"t+{_hours(p.simulated_seconds)} index {p.index_price / 1e6:,.2f} "
                f"open {p.open_positions} liquidated {p.liquidated}")  # fmt: skip
        if self.bar is not None:
            self.bar.set_postfix_str(said, refresh=False)
            self.bar.update(1)
        elif not self.quiet and p.step >= self.next_line:
            _note(f"  step {p.step + 1:>5}/{self.steps}  {said}")
            self.next_line = p.step + max(1, self.steps // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_file(scenario: Scenario, client: Client, *, out: Path, plots: bool, quiet: bool,
                   market_id: int = 0, fresh_chain: bool = False) -> int:  # fmt: skip
    from perpkit.report import summary_text, write_report
    from perpkit.scenario_run import ScenarioRun, mint_for

    run = ScenarioRun(scenario, client, market_id=market_id, mint=mint_for(scenario) if fresh_chain else None)
    bar = _Bar(scenario.name, len(run.path.points), quiet)
    run.progress = bar
    if not quiet:
        _note(f"perpkit scenario: {scenario.name} (seed {scenario.seed}) on {client.runtime_description}")
        _note(f"  {scenario.traders.count} traders, {len(run.path.points)} price updates over "
              f"{_hours(run.path.seconds)} simulated")  # fmt: skip
    try:
        result = await run.run()
    finally:
        bar.close()
    from perpkit.errors import MissingDependency

    started = time.perf_counter()
    try:
        report = write_report(result, out, plots=plots)
    except MissingDependency as exc:  # the summaries still say what happened; the plots need the extra
        report = write_report(result, out, plots=False)
        _note(f"perpkit: plots skipped: {exc}")
    if not quiet:
        _note(f"  report written in {time.perf_counter() - started:.1f} s")
    print(summary_text(result, report), flush=True)
    return 0


async def _run(args: argparse.Namespace, scenario: Scenario, out: Path, demo: bool) -> int:
    from perpkit.client import Client

    if demo or args.url is None:
        options: dict[str, Any] = {}
        if getattr(args, "features", None):
            options["features"] = args.features
        if getattr(args, "program", None):
            options["program"] = args.program
        from perpkit.scenario_run import payer_for

        client = await Client.embedded(payer=payer_for(scenario), **options)
        market_id, fresh = 0, True
    else:
        from perpkit.keyfile import load_keypair

        client = await Client.connect(args.url, payer=load_keypair(Path(args.keypair).expanduser()))
        await client.set_time(await client.now())  # ClockControlUnsupported now, not after the set-up
        market_id = time.time_ns() // 1_000_000 % (2**32 - 1)  # a fresh market on a shared cluster
        fresh = False
    try:
        return await run_file(scenario, client, out=out, plots=not args.no_plots, quiet=args.quiet,
                              market_id=market_id, fresh_chain=fresh)  # fmt: skip
    finally:
        await client.close()


def _fail(message: str) -> int:
    print(f"perpkit: error: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: Sequence[str], *, demo: bool = False) -> int:
    """``perpkit demo ...`` (``demo=True``) or ``perpkit scenario ...``; the exit code."""
    import dataclasses

    from perpkit.cli_errors import one_line, unreachable
    from perpkit.errors import PerpkitError, RpcUnavailable
    from perpkit.scenario import load_scenario

    parser = argparse.ArgumentParser(prog="perpkit demo" if demo else "perpkit scenario")
    if demo:
        parser.description = ("The main job: a built-in risk scenario on the embedded runtime (400 traders at 2-15x, "
                              "a 25% crash with a gap, 6 hours of funding, the crank), checked against the model, "
                              "with a report and plots.")  # fmt: skip
        add_run_arguments(parser, demo=True)
        parser.add_argument("--features", choices=("mainnet", "all"), default=None,
                            help="feature set of the embedded runtime (default: mainnet where it has one)")  # fmt: skip
        parser.add_argument("--program", type=Path, default=None,
                            help="program file to run (default: the bundled build the runtime takes)")  # fmt: skip
        action = "run"
        args = parser.parse_args(argv)
    else:
        sub = parser.add_subparsers(dest="action", required=True)
        add_run_arguments(sub.add_parser("run", help="run a scenario file and write its report"))
        p_redraw = sub.add_parser("redraw", help="rebuild a report's plots and summaries from its result.json")
        p_redraw.add_argument("folder", type=Path)
        args = parser.parse_args(argv)
        action = args.action
    try:
        if action == "redraw":
            from perpkit.report import redraw

            report = redraw(args.folder)
            print(f"redrew {len(report.plots)} plots and the summaries in {report.folder}", flush=True)
            return 0
        scenario = load_scenario(DEMO if demo else args.file)
        if not demo and args.seed is not None:
            scenario = dataclasses.replace(scenario, seed=args.seed)
        out = args.out or REPORTS / ("demo" if demo else _slug(scenario.name))
        return asyncio.run(_run(args, scenario, out, demo))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except RpcUnavailable as exc:
        return _fail(unreachable(getattr(args, "url", None) or "the endpoint", exc))
    except PerpkitError as exc:
        return _fail(one_line(str(exc)))
    except OSError as exc:
        return _fail(f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": "))
