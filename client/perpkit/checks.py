"""Checks of what a caller hands the SDK, shared by both backends so that they refuse it alike.

Each raises :class:`~perpkit.errors.InvalidInput`, saying what was wrong,
before anything is sent: solders would otherwise raise a bare ``TypeError`` or
``OverflowError``, or panic (``PanicException``, not even an ``Exception``)
while signing.
"""

from __future__ import annotations

from collections.abc import Sequence

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from perpkit.errors import InvalidInput
from perpkit.risk import U64_MAX


def require_pubkey(value: object, what: str = "address") -> Pubkey:
    """``value`` if it is a Pubkey; InvalidInput naming ``what`` otherwise."""
    if isinstance(value, Pubkey):
        return value
    hint = " (use Pubkey.from_string)" if isinstance(value, str) else ""
    raise InvalidInput(f"{what} must be a solders Pubkey, got {type(value).__name__} {value!r}{hint}")


def require_lamports(lamports: object, what: str = "lamports") -> int:
    """``lamports`` if it is a whole number from 1 to 2**64 - 1; InvalidInput otherwise."""
    if isinstance(lamports, bool) or not isinstance(lamports, int) or not 0 < lamports <= U64_MAX:
        raise InvalidInput(f"{what} must be a whole number from 1 to 2**64 - 1, got {lamports!r}")
    return lamports


def pubkey_of(keypair: Keypair) -> Pubkey:
    """``keypair.pubkey()``, read from the keypair's bytes (secret, then public key).

    solders >= 0.28 derives the public key again on every ``pubkey()`` call
    (about 25 us); the bytes hold it already (solders checks that they agree
    when a keypair is built from bytes)."""
    return Pubkey.from_bytes(bytes(keypair)[32:])


def signed_message(
    instructions: Sequence[Instruction], signers: Sequence[Keypair], blockhash: Hash | None = None
) -> Message:
    """The message of a transaction paid by ``signers[0]``, once ``signers`` are exactly the keys it needs.

    ``blockhash`` is its recent blockhash (none: the default hash, to be given when signing).

    InvalidInput when there is no signer (no fee payer), when an instruction
    needs a signature from a key that is not among ``signers``, or when a
    signer is not needed by any instruction.
    """
    if not signers:
        raise InvalidInput("a transaction needs at least one signer (the fee payer)")
    payer = pubkey_of(signers[0])
    if blockhash is None:
        message = Message(list(instructions), payer)
    else:
        message = Message.new_with_blockhash(list(instructions), payer, blockhash)
    count = message.header.num_required_signatures
    if count == 1 and len(signers) == 1:
        return message  # the one signature needed is the fee payer's, and the payer is the one signer
    required = list(message.account_keys[:count])
    given = {pubkey_of(signer) for signer in signers}
    missing = [str(key) for key in required if key not in given]
    if missing:
        raise InvalidInput(f"the transaction needs a signature from {', '.join(missing)}: no such signer was given")
    unneeded = [str(key) for key in given if key not in set(required)]
    if unneeded:
        raise InvalidInput(f"signer {', '.join(unneeded)} signs for no account of the transaction")
    return message


def signed_transaction(message: Message, signers: Sequence[Keypair]) -> VersionedTransaction:
    """``message`` (from :func:`signed_message`, with its blockhash) signed by ``signers``.

    The same signatures as ``Transaction(signers, message, blockhash)``, at the
    cost of one signature per signer and none of its ``pubkey()`` calls."""
    payload = bytes(message)
    if len(signers) == 1:
        return VersionedTransaction.populate(message, [signers[0].sign_message(payload)])
    by_key = {pubkey_of(signer): signer for signer in signers}
    keys = message.account_keys[: message.header.num_required_signatures]
    return VersionedTransaction.populate(message, [by_key[key].sign_message(payload) for key in keys])
