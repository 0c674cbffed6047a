"""The perps IDL: loaded once, used for program id, coders and account lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

from perpkit.coder import AccountCoder, EventCoder, InstructionCoder, TypeCoder
from perpkit.errors import UnknownIdlName
from perpkit.resources import idl_path


@dataclass(frozen=True)
class IdlAccountItem:
    """One account of an instruction, as the IDL lists it."""

    name: str
    signer: bool
    writable: bool
    address: Pubkey | None


@dataclass(frozen=True)
class PerpsIdl:
    """The parsed IDL and the borsh coders built from it (``perpkit.coder``)."""

    raw: dict[str, Any]
    type_coder: TypeCoder
    instruction_coder: InstructionCoder
    account_coder: AccountCoder
    event_coder: EventCoder

    @property
    def program_id(self) -> Pubkey:
        """The localnet program id the IDL carries (``address``)."""
        return Pubkey.from_string(self.raw["address"])

    def instruction(self, name: str) -> dict[str, Any]:
        for ix in self.raw["instructions"]:
            if ix["name"] == name:
                return dict(ix)
        raise UnknownIdlName(f"the IDL has no instruction {name!r}")

    def instruction_accounts(self, name: str) -> list[IdlAccountItem]:
        return [
            IdlAccountItem(
                name=a["name"],
                signer=bool(a.get("signer", False)),
                writable=bool(a.get("writable", False)),
                address=Pubkey.from_string(a["address"]) if "address" in a else None,
            )
            for a in self.instruction(name)["accounts"]
        ]

    def type_def(self, name: str) -> dict[str, Any]:
        for t in self.raw["types"]:
            if t["name"] == name:
                return dict(t)
        raise UnknownIdlName(f"the IDL has no type {name!r}")

    def constant(self, name: str) -> int:
        for c in self.raw.get("constants", []):
            if c["name"] == name:
                return int(c["value"])
        raise UnknownIdlName(f"the IDL has no constant {name!r}")

    def account_discriminator(self, name: str) -> bytes:
        for a in self.raw["accounts"]:
            if a["name"] == name:
                return bytes(a["discriminator"])
        raise UnknownIdlName(f"the IDL has no account {name!r}")


def load_idl(path: Path | None = None) -> PerpsIdl:
    """Parse an IDL file (default: the perps IDL shipped with perpkit)."""
    raw = json.loads((path or idl_path()).read_text())
    types = TypeCoder(raw.get("types", []))
    return PerpsIdl(raw, types, InstructionCoder(raw, types), AccountCoder(raw, types), EventCoder(raw, types))


@cache
def perps_idl() -> PerpsIdl:
    """The perps IDL, parsed once."""
    return load_idl()


PROGRAM_ID: Pubkey = perps_idl().program_id
"""The program id of the localnet deployment (from ``idl/perps.json``)."""
