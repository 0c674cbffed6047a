"""pytest fixtures for scenarios on the perps program, on any backend.

Installed with ``pip install 'perpkit[pytest]'``, pytest loads this plugin by
itself (the ``pytest11`` entry point): no ``conftest.py``, no ``pytest_plugins``
line.  Unless the project configures pytest-asyncio itself, ``async def`` tests
and fixtures run as they are (``asyncio_mode = auto``, function-scoped loops).

Options (each also a configuration value, then an environment variable):

``--perps-backend litesvm|rpc|all`` (``perps_backend``, ``PERPS_BACKEND``)
    where tests that use ``perps_client`` run (default: ``litesvm``, the
    in-process runtime).  ``all`` runs each of them on both.
``--perps-rpc-url URL`` (``perps_rpc_url``, ``PERPS_RPC_URL``)
    the endpoint for the RPC runs (implies ``--perps-backend rpc`` unless
    given); without it the plugin starts ``perpkit localnet`` (frozen clock)
    as a subprocess for the whole session.
``--perps-payer KEYPAIR`` (``perps_payer``, ``PERPS_PAYER``)
    keypair file that pays on an external endpoint (default: a new keypair
    funded by the endpoint's faucet).

A test that needs to move the clock on an endpoint that cannot (no
``surfnet_timeTravel``: ``solana-test-validator``, devnet) is skipped, with
that reason, at the moment it tries.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from solana.constants import LAMPORTS_PER_SOL

from perpkit.client import Client
from perpkit.errors import ClockControlUnsupported
from perpkit.localnet.process import LocalnetProcess

START_TIME = 1_700_000_000
"""Unix time the embedded runtime's clock (and the session's localnet) starts at."""
BACKENDS = ("litesvm", "rpc")
WS_URL = pytest.StashKey[str]()


OPTIONS = {
    # name: (command-line flag, environment variable, help)
    "perps_backend": (
        "--perps-backend",
        "PERPS_BACKEND",
        "run perps scenarios on the embedded runtime, over JSON-RPC, or both (default: litesvm)",
    ),
    "perps_rpc_url": (
        "--perps-rpc-url",
        "PERPS_RPC_URL",
        "JSON-RPC endpoint for the rpc backend (default: own localnet)",
    ),
    "perps_payer": ("--perps-payer", "PERPS_PAYER", "keypair file paying on an external endpoint"),
}
BACKEND_CHOICES = ("litesvm", "rpc", "all")

ASYNCIO_DEFAULTS = {"asyncio_default_fixture_loop_scope": "function"}
"""pytest-asyncio settings the plugin supplies when the project sets none (besides ``asyncio_mode = auto``)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perpkit")
    for name, (flag, env, text) in OPTIONS.items():
        choices = list(BACKEND_CHOICES) if name == "perps_backend" else None
        group.addoption(flag, dest=name, choices=choices, default=None, help=f"{text} [env {env}]")
        parser.addini(name, f"default for {flag}", default=None)


def perps_option(config: pytest.Config, name: str) -> str | None:
    """A perps option: the command line, else the configuration value, else the environment variable."""
    flag, env, _ = OPTIONS[name]
    value = config.getoption(name) or config.getini(name) or os.environ.get(env) or None
    if name == "perps_backend" and value is not None and value not in BACKEND_CHOICES:
        raise pytest.UsageError(f"{flag}: {value!r} is not one of {', '.join(BACKEND_CHOICES)}")
    return None if value is None else str(value)


def _configured(config: pytest.Config, name: str) -> bool:
    """Whether the project's configuration file (or ``-o``) sets ``name``."""
    inicfg = getattr(config, "_inicfg", None)
    return name in inicfg if inicfg is not None else False


@pytest.hookimpl(tryfirst=True)  # before pytest-asyncio reads its settings
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "litesvm_only: the test needs the in-process runtime")
    config.addinivalue_line("markers", "rpc_only: the test needs a JSON-RPC endpoint (e.g. it drives the CLI)")
    perps_option(config, "perps_backend")  # a bad value is a usage error now, not at collection
    if not config.pluginmanager.hasplugin("asyncio"):
        return
    if config.getoption("asyncio_mode", None) is None and not _configured(config, "asyncio_mode"):
        config.option.asyncio_mode = "auto"
    for name, value in ASYNCIO_DEFAULTS.items():
        if not _configured(config, name) and not config.getini(name):
            config._inicache[name] = value


def selected_backends(config: pytest.Config) -> list[str]:
    choice = perps_option(config, "perps_backend") or ("rpc" if perps_option(config, "perps_rpc_url") else "litesvm")
    return list(BACKENDS) if choice == "all" else [choice]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "perps_backend" in metafunc.fixturenames:
        backends = selected_backends(metafunc.config)
        if metafunc.definition.get_closest_marker("litesvm_only"):
            backends = [b for b in backends if b == "litesvm"]
        if metafunc.definition.get_closest_marker("rpc_only"):
            backends = [b for b in backends if b == "rpc"]
        metafunc.parametrize("perps_backend", backends, indirect=True)


@pytest.fixture
def perps_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        return (yield)
    except ClockControlUnsupported as exc:
        pytest.skip(f"needs clock control: {exc}")


@pytest.fixture(scope="session")
def perps_rpc_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The RPC endpoint of the session: ``--perps-rpc-url``, or a localnet server started for it."""
    external = perps_option(request.config, "perps_rpc_url")
    if external:
        yield external
        return
    with LocalnetProcess("--frozen-clock", "--start-time", str(START_TIME)) as server:
        if server.ws_url:
            request.config.stash[WS_URL] = server.ws_url
        yield server.url


@pytest.fixture(scope="session")
def perps_ws_url(perps_rpc_url: str, request: pytest.FixtureRequest) -> str:
    """The PubSub (WebSocket) endpoint of the session's RPC endpoint: the localnet's, or the RPC port + 1."""
    if WS_URL in request.config.stash:
        return request.config.stash[WS_URL]
    parsed = urlsplit(perps_rpc_url)
    scheme = "wss" if parsed.scheme == "https" else "ws"
    if parsed.port is None:
        return f"{scheme}://{parsed.netloc}{parsed.path}"
    return f"{scheme}://{parsed.hostname}:{parsed.port + 1}{parsed.path}"


@pytest_asyncio.fixture(loop_scope="function")
async def perps_client(perps_backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """A Client with the perps program and a funded payer, on the backend under test."""
    if perps_backend == "litesvm":
        client = await Client.embedded(start_time=START_TIME)
    else:
        url = request.getfixturevalue("perps_rpc_url")
        payer_file = perps_option(request.config, "perps_payer")
        if payer_file:
            from perpkit.localnet.launcher import read_keypair

            client = await Client.connect(url, payer=read_keypair(Path(payer_file)))
        else:
            client = await Client.connect(url, airdrop_lamports=100 * LAMPORTS_PER_SOL)
    try:
        yield client
    finally:
        await client.close()
