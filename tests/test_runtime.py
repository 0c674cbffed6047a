"""The embedded runtime (perpkit.runtime): both LiteSVM generations, feature sets, program builds."""

from __future__ import annotations

import pytest
from conftest import require_sbpf_v3_runtime
from solders.keypair import Keypair
from spl.token.instructions import transfer

from perpkit import Client
from perpkit.errors import InvalidInput, InvalidProgramFile, TransactionFailed
from perpkit.pytest_plugin import START_TIME
from perpkit.resources import program_path
from perpkit.runtime import (
    BROKEN_IN_LITESVM,
    SIMD_0460,
    SIMD_0500,
    embedded_runtime,
    feature_set,
    new_litesvm,
)
from perpkit.spl_token import TOKEN_PROGRAM_ID
from perpkit.testing import create_mint, create_token_account, mint_to

try:  # solana-py >= 0.40
    from spl.token.models import TransferParams
except ImportError:  # solana 0.36 (the anchorpy lane)
    from spl.token.instructions import TransferParams  # type: ignore[attr-defined,no-redef]

RUNTIME = embedded_runtime()


def test_the_runtime_generation_matches_the_litesvm_api() -> None:
    from solders.litesvm import LiteSVM

    assert RUNTIME.feature_set_api == hasattr(LiteSVM, "with_feature_set")
    assert RUNTIME.sbpf_version == (3 if RUNTIME.feature_set_api else 0)
    assert RUNTIME.program_path() == program_path(RUNTIME.sbpf_version)
    assert RUNTIME.program_path().read_bytes()[48] == RUNTIME.sbpf_version  # e_flags
    new_litesvm("mainnet")  # either API
    new_litesvm("all")


def test_an_unknown_feature_set_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="features must be one of mainnet, all, not 'devnet'"):
        feature_set("devnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no SBPFv2 build"):
        program_path(2)


def test_mainnet_is_the_default_and_all_turns_simd_0500_on() -> None:
    require_sbpf_v3_runtime()
    mainnet, everything = feature_set("mainnet"), feature_set("all")
    assert SIMD_0500 not in mainnet.active and SIMD_0500 in everything.active
    assert SIMD_0460 not in everything.active  # see the next test
    assert SIMD_0500 in feature_set("mainnet", activate=[SIMD_0500]).active
    assert SIMD_0500 not in feature_set("all", deactivate=[SIMD_0500]).active
    assert len(everything.active) > len(mainnet.active)


async def test_the_features_all_leaves_off_still_break_every_program() -> None:
    """If a solders release fixes SIMD-0460 in LiteSVM, this fails: drop it from BROKEN_IN_LITESVM."""
    require_sbpf_v3_runtime()
    assert BROKEN_IN_LITESVM == (SIMD_0460,)
    client = await Client.embedded(start_time=START_TIME, activate=[SIMD_0460])
    with pytest.raises(TransactionFailed, match="ProgramEnvironmentSetupFailure") as caught:
        await create_mint(client, decimals=6)  # SPL Token, not even our program
    assert any("Invalid memory region" in line for line in caught.value.logs)
    client = await Client.embedded(start_time=START_TIME, features="all")
    await create_mint(client, decimals=6)


async def test_spl_token_is_p_token_as_on_mainnet() -> None:
    """The mainnet feature set runs SPL Token as p-token: a Transfer costs tens of CU, not thousands."""
    require_sbpf_v3_runtime()
    client = await Client.embedded(start_time=START_TIME)
    mint = await create_mint(client, decimals=6)
    owner, other = client.payer, Keypair()
    source = await create_token_account(client, mint, owner.pubkey())
    await mint_to(client, mint, source, 1_000)
    destination = await create_token_account(client, mint, other.pubkey())
    params = TransferParams(
        program_id=TOKEN_PROGRAM_ID, source=source, dest=destination, owner=owner.pubkey(), amount=1
    )
    result = await client.send([transfer(params)])
    assert result.compute_units < 500, result.logs  # SPL Token 3.x: 4,645; p-token: 76
    assert await client.token_balance(destination) == 1


@pytest.mark.skipif(RUNTIME.sbpf_v3, reason="the anchorpy lane only: solders 0.26 predates SBPFv3")
async def test_a_v3_build_on_a_runtime_without_v3_says_what_to_load() -> None:
    with pytest.raises(InvalidProgramFile, match=r"SBPFv3 and the LiteSVM of solders 0\.26.* load perps-v0\.so here"):
        await Client.embedded(program=program_path(3))
