"""Deploying a program through the BPF upgradeable loader, as ``solana program deploy`` does.

The flow is the loader's own: create and initialise a buffer, write the ELF
into it in transaction-sized chunks, then ``DeployWithMaxDataLen``, which runs
the loader's deploy-time ELF verification and creates the program and its
program-data account.  It goes through :class:`~perpkit.client.Client`, so it
runs on the embedded runtime and on any RPC endpoint (devnet) alike.

Instruction data is bincode of ``UpgradeableLoaderInstruction``: a u32
little-endian variant tag, ``Vec<u8>`` as u64 length + bytes, ``usize`` as u64.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import CLOCK, RENT

from perpkit.errors import InvalidInput, TransactionFailed
from perpkit.program_file import check_program_bytes

if TYPE_CHECKING:
    from perpkit.client import Client

LOADER_V3 = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
BUFFER_METADATA_SIZE = 37  # enum tag (4) + Option<authority> (1 + 32)
PROGRAM_ACCOUNT_SIZE = 36  # enum tag (4) + programdata address (32)
PROGRAMDATA_METADATA_SIZE = 45  # enum tag (4) + slot (8) + Option<authority> (1 + 32)
WRITE_CHUNK = 900
"""Bytes of ELF per Write transaction: fits the 1232-byte packet with two signers."""

_INITIALIZE_BUFFER, _WRITE, _DEPLOY_WITH_MAX_DATA_LEN, _CLOSE = 0, 1, 2, 5


def programdata_address(program_id: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(program_id)], LOADER_V3)[0]


def initialize_buffer(buffer: Pubkey, authority: Pubkey) -> Instruction:
    return Instruction(
        LOADER_V3,
        struct.pack("<I", _INITIALIZE_BUFFER),
        [AccountMeta(buffer, False, True), AccountMeta(authority, False, False)],
    )


def write(buffer: Pubkey, authority: Pubkey, offset: int, chunk: bytes) -> Instruction:
    return Instruction(
        LOADER_V3,
        struct.pack("<IIQ", _WRITE, offset, len(chunk)) + chunk,
        [AccountMeta(buffer, False, True), AccountMeta(authority, True, False)],
    )


def deploy_with_max_data_len(
    *, payer: Pubkey, program: Pubkey, buffer: Pubkey, authority: Pubkey, max_data_len: int
) -> Instruction:
    return Instruction(
        LOADER_V3,
        struct.pack("<IQ", _DEPLOY_WITH_MAX_DATA_LEN, max_data_len),
        [
            AccountMeta(payer, True, True),
            AccountMeta(programdata_address(program), False, True),
            AccountMeta(program, False, True),
            AccountMeta(buffer, False, True),
            AccountMeta(RENT, False, False),
            AccountMeta(CLOCK, False, False),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
            AccountMeta(authority, True, False),
        ],
    )


def close_buffer(*, buffer: Pubkey, recipient: Pubkey, authority: Pubkey) -> Instruction:
    """Close a buffer (one never deployed, or left by a refused deploy): its lamports go to ``recipient``."""
    return Instruction(
        LOADER_V3,
        struct.pack("<I", _CLOSE),
        [AccountMeta(buffer, False, True), AccountMeta(recipient, False, True), AccountMeta(authority, True, False)],
    )


def close(*, programdata: Pubkey, recipient: Pubkey, authority: Pubkey, program: Pubkey) -> Instruction:
    """Close a deployed program: its program-data account's lamports go to ``recipient`` and the program
    can never run or be redeployed at that address again (the loader refuses it in the slot of its deploy)."""
    return Instruction(
        LOADER_V3,
        struct.pack("<I", _CLOSE),
        [
            AccountMeta(programdata, False, True),
            AccountMeta(recipient, False, True),
            AccountMeta(authority, True, False),
            AccountMeta(program, False, True),
        ],
    )


@dataclass(frozen=True)
class Deployment:
    program_id: Pubkey
    programdata: Pubkey
    buffer: Pubkey
    transactions: int


async def deploy_program(
    client: Client,
    program_bytes: bytes,
    program: Keypair,
    *,
    authority: Keypair | None = None,
    max_data_len: int | None = None,
    check: bool = True,
    progress: Callable[[int, int], None] | None = None,
    concurrency: int = 8,
) -> Deployment:
    """Deploy ``program_bytes`` at ``program``'s address; ``client.payer`` pays.

    ``max_data_len`` (default: twice the program) bounds later upgrades.
    ``check=False`` skips perpkit's own ELF checks so that the loader's
    deploy-time verification is what judges the file.  ``progress(done,
    total)`` is called after each transaction.  When the loader refuses the
    deploy, the buffer is closed (its rent returns to the payer) before the
    error is raised.  The writes are independent:
    up to ``concurrency`` of them are in flight at once (a remote cluster
    confirms each in about a second; one at a time, a 90 KB program would
    take a couple of minutes).
    """
    if concurrency < 1:
        raise InvalidInput(f"concurrency must be at least 1, got {concurrency}")
    if check:
        check_program_bytes(program_bytes, "<program being deployed>")
    signer = authority or client.payer
    size = len(program_bytes)
    max_len = 2 * size if max_data_len is None else max_data_len
    if max_len < size:
        raise InvalidInput(f"max_data_len {max_len} is smaller than the program ({size} bytes)")
    buffer = Keypair()
    chunks = [(off, program_bytes[off : off + WRITE_CHUNK]) for off in range(0, size, WRITE_CHUNK)]
    total = len(chunks) + 2
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    buffer_size = BUFFER_METADATA_SIZE + size
    await client.send(
        [
            await client.create_account_instruction(buffer.pubkey(), buffer_size, LOADER_V3),
            initialize_buffer(buffer.pubkey(), signer.pubkey()),
        ],
        [buffer],
    )
    step()
    gate = asyncio.Semaphore(concurrency)

    async def write_chunk(offset: int, chunk: bytes) -> None:
        async with gate:
            await client.send([write(buffer.pubkey(), signer.pubkey(), offset, chunk)], [signer])
            step()

    await asyncio.gather(*(write_chunk(offset, chunk) for offset, chunk in chunks))
    try:
        await client.send(
            [
                await client.create_account_instruction(program.pubkey(), PROGRAM_ACCOUNT_SIZE, LOADER_V3),
                deploy_with_max_data_len(
                    payer=client.payer.pubkey(),
                    program=program.pubkey(),
                    buffer=buffer.pubkey(),
                    authority=signer.pubkey(),
                    max_data_len=max_len,
                ),
            ],
            [program, signer],
        )
    except TransactionFailed:  # refused (the loader's ELF verification, most often): the buffer's rent comes back
        back = close_buffer(buffer=buffer.pubkey(), recipient=client.payer.pubkey(), authority=signer.pubkey())
        await client.send([back], [signer])
        raise
    step()
    return Deployment(program.pubkey(), programdata_address(program.pubkey()), buffer.pubkey(), total)


async def close_program(client: Client, program_id: Pubkey, *, authority: Keypair | None = None,
                        recipient: Pubkey | None = None) -> int:  # fmt: skip
    """Close a program ``authority`` (default: the payer) may upgrade; its program-data rent goes to
    ``recipient`` (default: the payer).  Returns the lamports reclaimed."""
    signer = authority or client.payer
    programdata = programdata_address(program_id)
    account = await client.account(programdata)
    if account is None or account.owner != LOADER_V3:
        raise InvalidInput(f"{program_id} has no program-data account: not a program of the upgradeable loader")
    # The loader refuses to close a program in the slot it was deployed in; wait (briefly) for the next one.
    deployed_slot = int.from_bytes(bytes(account.data)[4:12], "little")
    for _ in range(50):
        if (await client.clock()).slot > deployed_slot:
            break
        await asyncio.sleep(0.2)
    instruction = close(programdata=programdata, recipient=recipient or client.payer.pubkey(),
                        authority=signer.pubkey(), program=program_id)  # fmt: skip
    await client.send([instruction], [signer])
    return account.lamports
