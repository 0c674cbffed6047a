"""Program-derived addresses of the perps program.

Every function takes the program id, so the same code serves the localnet
deployment (the IDL's address, the default) and any other (devnet).
"""

from __future__ import annotations

from solders.pubkey import Pubkey

from perpkit.errors import InvalidInput
from perpkit.idl import PROGRAM_ID


def _u32(value: int, what: str) -> bytes:
    if not 0 <= value < 2**32:
        raise InvalidInput(f"{what} must fit in a u32, got {value}")
    return value.to_bytes(4, "little")


def market_address(admin: Pubkey, market_id: int, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """``PDA("market", admin, market_id as u32 LE)``."""
    return Pubkey.find_program_address([b"market", bytes(admin), _u32(market_id, "market_id")], program_id)[0]


def market_authority_address(market: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """``PDA("authority", market)``: owner of the market's vault."""
    return Pubkey.find_program_address([b"authority", bytes(market)], program_id)[0]


def vault_address(market: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """``PDA("vault", market)``: the market's SPL token account."""
    return Pubkey.find_program_address([b"vault", bytes(market)], program_id)[0]


def oracle_address(authority: Pubkey, oracle_id: int, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """``PDA("oracle", authority, oracle_id as u32 LE)``: a test oracle."""
    return Pubkey.find_program_address([b"oracle", bytes(authority), _u32(oracle_id, "oracle_id")], program_id)[0]


def user_address(market: Pubkey, owner: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """``PDA("user", market, owner)``: a trader's account in a market."""
    return Pubkey.find_program_address([b"user", bytes(market), bytes(owner)], program_id)[0]
