"""The harness drops in: installed, pytest loads it (the pytest11 entry point) with no conftest.py and
no pytest configuration; its async fixtures and the user's ``async def`` tests just run; its options
are ``--perps-*``, each with a configuration value and an environment variable behind it.

Each run is a pytest subprocess in a directory without any configuration file, as a downstream
project has it (.ci/run also installs examples/downstream from the built wheel into a fresh venv).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "downstream"
QUIET_ASYNCIO = ['"asyncio_default_fixture_loop_scope" is unset', "not natively supported", "PytestDeprecationWarning"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An empty project directory: no pytest.ini, pyproject.toml, tox.ini, setup.cfg or conftest.py."""
    for name in ("PERPS_BACKEND", "PERPS_RPC_URL", "PERPS_PAYER", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def test_the_plugin_is_a_pytest11_entry_point() -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11") if e.value == "perpkit.pytest_plugin"]
    assert entry.name == "perpkit.pytest_plugin"  # so an older `pytest_plugins = [...]` line finds it registered


def test_the_example_project_passes_with_no_configuration(project: pytest.Pytester) -> None:
    project.makepyfile(test_liquidation=(EXAMPLE / "tests" / "test_liquidation.py").read_text())
    result = project.runpytest_subprocess("-W", "error::pytest.PytestDeprecationWarning")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*plugins:*perpkit*", "*asyncio: mode=Mode.AUTO*"])
    output = result.stdout.str() + result.stderr.str()
    for complaint in QUIET_ASYNCIO:
        assert complaint not in output


def test_async_fixtures_and_tests_of_the_user_run_too(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def slot(perps_client):
            return await perps_client.backend.get_slot() if hasattr(perps_client.backend, "get_slot") else 0

        async def test_user_async_fixture(slot):
            await asyncio.sleep(0)
            assert slot >= 0

        async def test_clock(perps_client):
            assert await perps_client.now() == 1_700_000_000
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_anchorpys_plugin_loads_too_on_the_anchorpy_lane(project: pytest.Pytester) -> None:
    """anchorpy3 registers pytest_anchorpy (it imports pytest_asyncio and xprocess): start-up survives it."""
    project.makepyfile(
        """
        def test_plugins(pytestconfig):
            manager = pytestconfig.pluginmanager
            assert manager.hasplugin("perpkit.pytest_plugin") and manager.hasplugin("asyncio")
            print("anchorpy plugin:", manager.hasplugin("pytest_anchorpy"))
        """
    )
    result = project.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    anchorpy = importlib.util.find_spec("anchorpy") is not None
    result.stdout.fnmatch_lines([f"*anchorpy plugin: {anchorpy}*"])


BACKEND_TEST = """
def test_where(perps_backend):
    pass
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ([], ["test_where[[]litesvm[]]"]),
        (["--perps-backend", "all"], ["test_where[[]litesvm[]]", "test_where[[]rpc[]]"]),
        (["--perps-rpc-url", "http://127.0.0.1:1"], ["test_where[[]rpc[]]"]),
        (["-o", "perps_backend=rpc"], ["test_where[[]rpc[]]"]),
        ("ini", ["test_where[[]litesvm[]]", "test_where[[]rpc[]]"]),
        ("env", ["test_where[[]rpc[]]"]),
    ],
    ids=["default", "option", "rpc-url", "override", "ini", "env"],
)
def test_the_perps_options_and_their_fallbacks(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: list[str] | str, expected: list[str]
) -> None:
    project.makepyfile(BACKEND_TEST)
    args: list[str] = []
    if how == "ini":
        project.makepyprojecttoml('[tool.pytest.ini_options]\nperps_backend = "all"\n')
    elif how == "env":
        monkeypatch.setenv("PERPS_BACKEND", "rpc")
    else:
        assert isinstance(how, list)
        args = how
    result = project.runpytest_subprocess("--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([f"*::{line}" for line in expected])
    assert f"{len(expected)} test" in result.stdout.str()


def test_the_old_option_names_are_gone_and_a_bad_backend_is_a_usage_error(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(BACKEND_TEST)
    result = project.runpytest_subprocess("--backend", "all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --backend*"])
    monkeypatch.setenv("PERPS_BACKEND", "devnet")
    result = project.runpytest_subprocess("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perps-backend: 'devnet' is not one of litesvm, rpc, all*"])


def test_an_older_conftest_that_names_the_plugin_still_works(project: pytest.Pytester) -> None:
    project.makeconftest('pytest_plugins = ["perpkit.pytest_plugin"]')
    project.makepyfile(BACKEND_TEST)
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_a_project_that_configures_pytest_asyncio_keeps_its_settings(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = module\n")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_marked(perps_client):
            pass
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*asyncio: mode=Mode.STRICT*asyncio_default_fixture_loop_scope=module*"])
