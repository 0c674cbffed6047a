"""The perps program through the BPF upgradeable loader's own flow, as on devnet.

``PROGRAM`` is the build the installed runtime takes (``perps.so``, SBPFv3, on
solders >= 0.28; ``perps-v0.so`` on solders 0.26).  The SIMD-0500 tests need
the v3 runtime: a mainnet-like cluster once SIMD-0500 is active deploys only
SBPFv3, and the v0 build is refused there with the loader's reason.
"""

from __future__ import annotations

import struct

import pytest
from conftest import require_sbpf_v3_runtime
from solders.keypair import Keypair

from perpkit import Client, MarketParams, TransactionFailed
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.crank import liquidate
from perpkit.deploy import LOADER_V3, PROGRAMDATA_METADATA_SIZE, close_program, deploy_program, programdata_address
from perpkit.errors import InvalidInput
from perpkit.positions import Side
from perpkit.pytest_plugin import START_TIME
from perpkit.resources import program_path
from perpkit.runtime import DISABLE_NEW_LOADER_V3_DEPLOYMENTS, SIMD_0500, embedded_runtime, feature_set
from perpkit.testing import setup_market, setup_trading

RUNTIME = embedded_runtime()
PROGRAM = RUNTIME.program_path().read_bytes()
V3 = program_path(3).read_bytes()
V0 = program_path(0).read_bytes()
UNIT = 10**6


def entry_offset(data: bytes) -> int:
    """File offset of the entrypoint instruction (v0: vaddr == offset; v3: in the bytecode segment)."""
    e_entry, e_phoff = struct.unpack_from("<QQ", data, 24)
    if data[48] < 3:
        return e_entry
    (phnum,) = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        _type, _flags, offset, vaddr, _paddr, filesz, _memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + 56 * i
        )
        if vaddr <= e_entry < vaddr + filesz:
            return offset + e_entry - vaddr
    raise AssertionError("no segment holds the entrypoint")


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


async def test_closing_a_deployed_program_reclaims_its_rent(perps_client: Client) -> None:
    if not RUNTIME.sbpf_v3:
        pytest.skip(f"solders {RUNTIME.solders_version}'s LiteSVM panics now and then on the loader's Close "
                    "('It shouldn't be possible to write invalid sysvars'); the default lane runs this")  # fmt: skip
    c = perps_client
    program = Keypair()
    await deploy_program(c, PROGRAM, program, max_data_len=len(PROGRAM))
    programdata = await c.account(programdata_address(program.pubkey()))
    assert programdata is not None
    clock = await c.clock()
    await c.backend.set_clock(clock.unix_timestamp + 1, clock.slot + 1)  # the loader refuses a close in the deploy slot
    before = (await c.account(c.payer.pubkey())).lamports  # type: ignore[union-attr]
    assert await close_program(c, program.pubkey()) == programdata.lamports
    after = (await c.account(c.payer.pubkey())).lamports  # type: ignore[union-attr]
    assert after - before == programdata.lamports - 5_000  # the rent, less the close's fee
    gone = await c.account(programdata_address(program.pubkey()))
    assert gone is None or gone.lamports == 0
    # Whether the closed program still runs is the runtime's business: a validator refuses it at once,
    # while LiteSVM may keep serving it from its program cache; so this test checks only the accounts.
    with pytest.raises(InvalidInput, match="no program-data account"):
        await close_program(c, program.pubkey())


async def test_loader_verifies_the_elf_at_deploy_time(perps_client: Client) -> None:
    broken = bytearray(PROGRAM)
    broken[entry_offset(PROGRAM)] = 0xFF  # the first instruction: an opcode SBPF does not have
    program = Keypair()
    before = (await perps_client.account(perps_client.payer.pubkey())).lamports  # type: ignore[union-attr]
    with pytest.raises(TransactionFailed, match="instruction 1: InvalidAccountData") as caught:
        await deploy_program(perps_client, bytes(broken), program, check=False)
    # the loader's own verification, at deploy time
    assert any(
        "unsupported BPF instruction" in line.lower() or "invalid" in line.lower() for line in caught.value.logs
    ), caught.value.logs
    assert await perps_client.backend.get_account(program.pubkey()) is None
    lamports = await perps_client.account(perps_client.payer.pubkey())
    assert lamports is not None and before - lamports.lamports < 1_000_000  # fees only: the buffer was closed


@pytest.mark.litesvm_only
async def test_reverted_gate_is_why_plain_litesvm_refuses_deploys() -> None:
    """solders 0.26 enables SIMD-0167's disable_new_loader_v3_deployments: "Unsupported instruction"."""
    if DISABLE_NEW_LOADER_V3_DEPLOYMENTS not in feature_set(
        "all", activate=[DISABLE_NEW_LOADER_V3_DEPLOYMENTS]
    ).active or (RUNTIME.sbpf_v3):
        pytest.skip(f"solders {RUNTIME.solders_version}'s agave no longer knows the reverted SIMD-0167 gate")
    backend = LiteSvmBackend(start_time=START_TIME, activate=[DISABLE_NEW_LOADER_V3_DEPLOYMENTS])
    payer = Keypair()
    await backend.request_airdrop(payer.pubkey(), 10**12)
    client = Client(backend, payer)
    with pytest.raises(TransactionFailed, match="instruction 1: InvalidInstructionData") as caught:
        await deploy_program(client, PROGRAM, Keypair())
    assert any("Unsupported instruction" in line for line in caught.value.logs)


async def _deployer(**options: object) -> Client:
    backend = LiteSvmBackend(start_time=START_TIME, **options)  # type: ignore[arg-type]
    payer = Keypair()
    await backend.request_airdrop(payer.pubkey(), 10**12)
    return Client(backend, payer)


@pytest.mark.litesvm_only
@pytest.mark.parametrize("features", ["mainnet", "all"])
async def test_v3_deploys_under_simd_0500_and_liquidates(features: str) -> None:
    """perps.so (SBPFv3) through the deploy flow with SIMD-0500 on, then a whole liquidation on it."""
    require_sbpf_v3_runtime()
    assert V3[48] == 3  # e_flags
    client = await _deployer(features=features, activate=[SIMD_0500])
    assert SIMD_0500 in feature_set(features, activate=[SIMD_0500]).active  # type: ignore[arg-type]
    deployment = await deploy_program(client, V3, Keypair())
    c = Client(client.backend, client.payer, program_id=deployment.program_id)
    setup = await setup_trading(
        c,
        price=100 * UNIT,
        traders=2,
        insurance=UNIT,
        params=MarketParams(initial_margin_bps=501, maintenance_margin_bps=500),
    )
    long_ = await c.open_position(setup.market, Side.LONG, 10 * UNIT, 51 * UNIT, owner=setup.traders[0])
    await c.open_position(setup.market, Side.SHORT, 10 * UNIT, 200 * UNIT, owner=setup.traders[1])
    assert await liquidate(c, setup.market) is None  # healthy at the entry price
    await c.set_oracle_price(setup.oracle, price=long_.liquidation_price() - 1)
    done = await liquidate(c, setup.market)
    assert done is not None and (done.batch.long_count, done.batch.short_count) == (1, 0)
    assert done.result.compute_units > 0


@pytest.mark.litesvm_only
async def test_v0_build_is_refused_under_simd_0500_with_the_loaders_reason() -> None:
    require_sbpf_v3_runtime()
    assert V0[48] == 0
    client = await _deployer(activate=[SIMD_0500])
    program = Keypair()
    with pytest.raises(TransactionFailed, match="instruction 1: InvalidAccountData") as caught:
        await deploy_program(client, V0, program)
    assert "Detected sbpf_version required by the executable which are not enabled" in caught.value.logs
    assert await client.backend.get_account(program.pubkey()) is None
    # without SIMD-0500 (the mainnet feature set today) the same file still deploys
    assert (await deploy_program(await _deployer(), V0, Keypair())).transactions > 2


async def test_the_sdk_picks_the_build_the_runtime_runs_and_says_which() -> None:
    client = await Client.embedded(start_time=START_TIME)
    expected = "perps.so (SBPFv3)" if RUNTIME.sbpf_v3 else "perps-v0.so (SBPFv0)"
    assert expected in client.runtime_description
    assert f"solders {RUNTIME.solders_version}" in client.runtime_description
    programdata = await client.backend.get_account(programdata_address(client.program_id))
    assert programdata is not None and programdata.owner == LOADER_V3  # installed under the upgradeable loader
    assert bytes(programdata.data[PROGRAMDATA_METADATA_SIZE:]) == RUNTIME.program_path().read_bytes()
    assert programdata.data[12] == 0  # no upgrade authority, as --upgradeable-program ID FILE none
