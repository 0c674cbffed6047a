"""fixtures/perps.so through the BPF upgradeable loader's own flow, as on devnet."""

from __future__ import annotations

import pytest
from conftest import section
from solders.keypair import Keypair

from perpkit import Client, TransactionFailed
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.deploy import LOADER_V3, PROGRAMDATA_METADATA_SIZE, deploy_program, programdata_address
from perpkit.pytest_plugin import START_TIME
from perpkit.resources import program_path
from perpkit.testing import setup_market

PROGRAM = program_path().read_bytes()


async def test_deploy_then_invoke(perps_client: Client) -> None:
    c = perps_client
    program = Keypair()
    seen: list[tuple[int, int]] = []
    deployment = await deploy_program(c, PROGRAM, program, progress=lambda done, total: seen.append((done, total)))
    total = len(range(0, len(PROGRAM), 900)) + 2
    assert seen == [(i, total) for i in range(1, total + 1)]

    account = await c.backend.get_account(program.pubkey())
    assert account is not None and account.executable and account.owner == LOADER_V3
    data = await c.backend.get_account(programdata_address(program.pubkey()))
    assert data is not None
    assert bytes(data.data[PROGRAMDATA_METADATA_SIZE : PROGRAMDATA_METADATA_SIZE + len(PROGRAM)]) == PROGRAM
    assert len(data.data) == PROGRAMDATA_METADATA_SIZE + 2 * len(PROGRAM)  # max_data_len
    assert await c.backend.get_account(deployment.buffer) is None  # drained into the program-data account

    # the deployed copy runs: a whole market at the new address
    deployed = Client(c.backend, c.payer, program_id=program.pubkey())
    setup = await setup_market(deployed, book_capacity=4)
    assert (await deployed.fetch_market(setup.market)).book_capacity == 4


async def test_loader_verifies_the_elf_at_deploy_time(perps_client: Client) -> None:
    broken = bytearray(PROGRAM)
    broken[section(PROGRAM, ".rel.dyn")[1] + 8] = 5  # first dynamic relocation: type 5, unknown
    program = Keypair()
    with pytest.raises(TransactionFailed, match="instruction 1: InvalidAccountData") as caught:
        await deploy_program(perps_client, bytes(broken), program, check=False)
    assert "Relocation failed, unknown type 5" in caught.value.logs  # the loader's own ELF verification
    assert await perps_client.backend.get_account(program.pubkey()) is None


@pytest.mark.litesvm_only
async def test_reverted_gate_is_why_plain_litesvm_refuses_deploys() -> None:
    """solders 0.26 enables SIMD-0167's disable_new_loader_v3_deployments: "Unsupported instruction"."""
    backend = LiteSvmBackend(start_time=START_TIME, allow_loader_v3_deploys=False)
    payer = Keypair()
    await backend.request_airdrop(payer.pubkey(), 10**12)
    client = Client(backend, payer)
    with pytest.raises(TransactionFailed, match="instruction 1: InvalidInstructionData") as caught:
        await deploy_program(client, PROGRAM, Keypair())
    assert any("Unsupported instruction" in line for line in caught.value.logs)
