"""pytest fixtures for scenarios on the perps program, on any backend.

Opt in from a ``conftest.py``::

    pytest_plugins = ["perpkit.pytest_plugin"]

Options:

``--backend litesvm|rpc|all``
    where tests that use ``perps_client`` run (default: ``litesvm``, the
    in-process runtime).  ``all`` runs each of them on both.
``--rpc-url URL``
    the endpoint for the RPC runs (implies ``--backend rpc`` unless given);
    without it the plugin starts ``perpkit localnet`` (frozen clock) as a
    subprocess for the whole session.
``--payer KEYPAIR``
    keypair file that pays on an external endpoint (default: a new keypair
    funded by the endpoint's faucet).

A test that needs to move the clock on an endpoint that cannot (no
``surfnet_timeTravel``: ``solana-test-validator``, devnet) is skipped, with
that reason, at the moment it tries.
"""

from __future__ import annotations

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


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perpkit")
    group.addoption(
        "--backend",
        choices=["litesvm", "rpc", "all"],
        default=None,
        help="run perps scenarios on the embedded runtime, over JSON-RPC, or both (default: litesvm)",
    )
    group.addoption("--rpc-url", default=None, help="JSON-RPC endpoint for the rpc backend (default: own localnet)")
    group.addoption("--payer", default=None, help="keypair file paying on an external endpoint")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "litesvm_only: the test needs the in-process runtime")
    config.addinivalue_line("markers", "rpc_only: the test needs a JSON-RPC endpoint (e.g. it drives the CLI)")


def selected_backends(config: pytest.Config) -> list[str]:
    choice = config.getoption("--backend") or ("rpc" if config.getoption("--rpc-url") else "litesvm")
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
    """The RPC endpoint of the session: ``--rpc-url``, or a localnet server started for it."""
    external = request.config.getoption("--rpc-url")
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


@pytest_asyncio.fixture
async def perps_client(perps_backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    """A Client with the perps program and a funded payer, on the backend under test."""
    if perps_backend == "litesvm":
        client = await Client.embedded(start_time=START_TIME)
    else:
        url = request.getfixturevalue("perps_rpc_url")
        payer_file = request.config.getoption("--payer")
        if payer_file:
            from perpkit.localnet.launcher import read_keypair

            client = await Client.connect(url, payer=read_keypair(Path(payer_file)))
        else:
            client = await Client.connect(url, airdrop_lamports=100 * LAMPORTS_PER_SOL)
    try:
        yield client
    finally:
        await client.close()
