"""Packing instructions into transactions by their real serialised size (perpkit.packing)."""

from __future__ import annotations

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from perpkit import instructions as ix
from perpkit.errors import InvalidInput
from perpkit.packing import BUDGET_RESERVE, PACKET_BYTES, pack, transaction_size


def test_clear_user_instructions_pack_about_twenty_to_a_transaction_and_each_group_is_maximal() -> None:
    payer, market, book = Keypair().pubkey(), Pubkey.new_unique(), Pubkey.new_unique()
    clears = [ix.clear_user(market=market, user=Pubkey.new_unique(), book=book) for _ in range(100)]
    groups = pack(clears, payer)
    assert [i for g in groups for i in g] == clears  # in order, none lost
    limit = PACKET_BYTES - BUDGET_RESERVE
    for k, group in enumerate(groups):
        assert transaction_size(group, payer) <= limit
        if k + 1 < len(groups):  # one more would not have fitted
            assert transaction_size([*group, groups[k + 1][0]], payer) > limit
    assert 19 <= len(groups[0]) <= 22, [len(g) for g in groups]


def test_the_size_is_the_wire_size() -> None:
    from solders.hash import Hash
    from solders.message import Message
    from solders.transaction import Transaction

    signer = Keypair()
    instruction = ix.clear_user(market=Pubkey.new_unique(), user=Pubkey.new_unique(), book=Pubkey.new_unique())
    tx = Transaction(
        [signer], Message.new_with_blockhash([instruction], signer.pubkey(), Hash.default()), Hash.default()
    )
    assert transaction_size([instruction], signer.pubkey()) == len(bytes(tx))


def test_an_instruction_too_big_alone_is_a_clear_error() -> None:
    big = Instruction(Pubkey.new_unique(), bytes(1_200), [AccountMeta(Pubkey.new_unique(), False, False)])
    with pytest.raises(InvalidInput, match="one instruction alone"):
        pack([big], Keypair().pubkey())
