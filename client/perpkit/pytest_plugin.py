"""pytest fixtures for scenarios on the perps program.

Opt in from a ``conftest.py``::

    pytest_plugins = ["perpkit.pytest_plugin"]

``perps_client`` is a :class:`~perpkit.client.Client` on a fresh embedded
LiteSVM runtime with the program loaded and a funded payer, its clock at a
fixed start time so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from perpkit.client import Client

START_TIME = 1_700_000_000
"""Unix time the embedded runtime's clock starts at in tests."""


@pytest_asyncio.fixture
async def perps_client() -> AsyncIterator[Client]:
    client = await Client.embedded(start_time=START_TIME)
    try:
        yield client
    finally:
        await client.close()
