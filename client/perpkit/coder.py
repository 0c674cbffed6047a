"""Borsh coding of the perps IDL's types, with ``construct``.

Every IDL type maps to a ``construct`` layout: the integers (``u128`` and
``i128`` as 16 little-endian bytes), ``bool``, ``pubkey`` (32 bytes, a solders
``Pubkey``), fixed arrays and ``defined`` structs.  A type with no fixed layout
(``vec``, ``option``, ``string``, ``bytes``, enums, generics) is refused with
:class:`~perpkit.errors.UnsupportedIdlType` naming it, as
``program/tools/idlgen.py`` refuses it: the program reads its data in place.

Decoded values are plain Python: ``int``, ``bool``, ``Pubkey``, ``list`` for an
array and ``dict`` (in IDL field order) for a struct; encoding takes the same
shapes.  The bytes are Anchor's: ``tests/test_coder.py`` compares them with
anchorpy's coders wherever anchorpy is installed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import construct as cs
from solders.pubkey import Pubkey

from perpkit.errors import AccountDecodeError, DecodeError, InvalidInput, UnknownIdlName, UnsupportedIdlType

Layout: TypeAlias = Any
"""A ``construct`` layout (construct has no type hints of its own)."""

PROGRAM_DATA = "Program data: "
"""Prefix of the log line ``sol_log_data`` writes (how Anchor programs emit events)."""


def _to_pubkey(raw: bytes, _context: object) -> Pubkey:
    return Pubkey(raw)


def _from_pubkey(key: Pubkey, _context: object) -> bytes:
    return bytes(key)


_SCALARS: dict[str, Layout] = {
    "u8": cs.Int8ul,
    "u16": cs.Int16ul,
    "u32": cs.Int32ul,
    "u64": cs.Int64ul,
    "u128": cs.BytesInteger(16, signed=False, swapped=True),
    "i8": cs.Int8sl,
    "i16": cs.Int16sl,
    "i32": cs.Int32sl,
    "i64": cs.Int64sl,
    "i128": cs.BytesInteger(16, signed=True, swapped=True),
    "bool": cs.Flag,
    "pubkey": cs.ExprAdapter(cs.Bytes(32), _to_pubkey, _from_pubkey),
}

_BUILD_ERRORS: tuple[type[Exception], ...] = (cs.ConstructError, KeyError, TypeError, ValueError)
_PARSE_ERRORS: tuple[type[Exception], ...] = (cs.ConstructError, ValueError)


def _array(element: Layout, count: int) -> Layout:
    def decode(items: list[Any], _context: object) -> list[Any]:
        return list(items)

    def encode(items: list[Any], _context: object) -> list[Any]:
        return items

    return cs.ExprAdapter(cs.Array(count, element), decode, encode)


def _struct(fields: list[tuple[str, Layout]]) -> Layout:
    names = [name for name, _ in fields]

    def decode(container: Mapping[str, Any], _context: object) -> dict[str, Any]:
        return {name: container[name] for name in names}  # without construct's "_io"

    def encode(values: Mapping[str, Any], _context: object) -> Mapping[str, Any]:
        missing = [name for name in names if name not in values]
        if missing:
            raise KeyError(f"missing fields {missing}")
        return values

    return cs.ExprAdapter(cs.Struct(*(name / layout for name, layout in fields)), decode, encode)


def _build(layout: Layout, value: Any, what: str) -> bytes:
    try:
        return bytes(layout.build(value))
    except _BUILD_ERRORS as exc:
        raise InvalidInput(f"cannot encode {what}: {exc}") from exc


def _parse(layout: Layout, data: bytes, what: str, error: type[DecodeError] = DecodeError) -> dict[str, Any]:
    try:
        return dict(layout.parse(bytes(data)))
    except _PARSE_ERRORS as exc:
        raise error(f"cannot decode {what}: {exc}") from exc


class TypeCoder:
    """Layouts of the IDL's types; every named type is checked (and built) up front."""

    def __init__(self, types: Iterable[Mapping[str, Any]]) -> None:
        self._definitions = {t["name"]: t for t in types}
        self._layouts: dict[str, Layout] = {}
        self._building: set[str] = set()
        for name in self._definitions:
            self.defined(name)

    def layout(self, ty: Any, where: str) -> Layout:
        """The layout of IDL type expression ``ty``; ``where`` names its place for the error."""
        if isinstance(ty, str) and ty in _SCALARS:
            return _SCALARS[ty]
        if isinstance(ty, Mapping) and list(ty) == ["array"]:
            element, count = ty["array"]
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                return _array(self.layout(element, f"{where}[]"), count)
        if isinstance(ty, Mapping) and list(ty) == ["defined"]:
            defined = ty["defined"]
            if isinstance(defined, Mapping) and list(defined) == ["name"]:
                return self.defined(defined["name"], where)
        raise UnsupportedIdlType(
            f"{where}: IDL type {json.dumps(ty)} has no fixed layout "
            "(supported: integers, bool, pubkey, fixed arrays, defined structs)"
        )

    def defined(self, name: str, where: str = "") -> Layout:
        """The layout of the IDL's struct ``name``."""
        if name in self._layouts:
            return self._layouts[name]
        place = f"{where}: " if where else ""
        if name not in self._definitions:
            raise UnsupportedIdlType(f"{place}type {name} is not defined in the IDL")
        if name in self._building:
            raise UnsupportedIdlType(f"{place}type {name} contains itself")
        body = self._definitions[name]["type"]
        if body.get("kind") != "struct":
            kind = body.get("kind")
            raise UnsupportedIdlType(f"{place}type {name} is of kind {kind!r}: only structs have a fixed layout")
        if self._definitions[name].get("generics"):
            raise UnsupportedIdlType(f"{place}type {name} has generic parameters: they are not supported")
        fields = body.get("fields", [])
        if not all(isinstance(f, Mapping) and "name" in f for f in fields):
            raise UnsupportedIdlType(f"{place}type {name} is a tuple struct: only named fields are supported")
        self._building.add(name)
        try:
            layout = self.struct(fields, name)
        finally:
            self._building.discard(name)
        self._layouts[name] = layout
        return layout

    def struct(self, fields: Iterable[Mapping[str, Any]], where: str) -> Layout:
        """A struct layout of named IDL fields (a type's fields, an instruction's arguments)."""
        return _struct([(f["name"], self.layout(f["type"], f"{where}.{f['name']}")) for f in fields])

    def encode(self, name: str, value: Mapping[str, Any]) -> bytes:
        """Borsh bytes of a value of struct ``name``."""
        return _build(self.defined(name), value, name)

    def decode(self, name: str, data: bytes) -> dict[str, Any]:
        """A value of struct ``name`` from its bytes (bytes past its size are ignored)."""
        return _parse(self.defined(name), data, name)

    def size(self, name: str) -> int:
        """Bytes of struct ``name`` (every supported type has a fixed size)."""
        size: int = self.defined(name).sizeof()
        return size


def _discriminators(items: Iterable[Mapping[str, Any]]) -> dict[str, bytes]:
    return {item["name"]: bytes(item["discriminator"]) for item in items}


class InstructionCoder:
    """Instruction data: the IDL's 8-byte discriminator, then the borsh arguments."""

    def __init__(self, idl: Mapping[str, Any], types: TypeCoder) -> None:
        instructions = idl.get("instructions", [])
        self._discriminators = _discriminators(instructions)
        self._names = {disc: name for name, disc in self._discriminators.items()}
        self._args = {ix["name"]: types.struct(ix["args"], ix["name"]) for ix in instructions}

    def discriminator(self, name: str) -> bytes:
        if name not in self._discriminators:
            raise UnknownIdlName(f"the IDL has no instruction {name!r}")
        return self._discriminators[name]

    def encode(self, name: str, args: Mapping[str, Any]) -> bytes:
        """Data of instruction ``name`` with ``args`` (by argument name)."""
        return self.discriminator(name) + _build(self._args[name], args, f"{name} arguments")

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(instruction name, arguments) of instruction data."""
        name = self._names.get(bytes(data[:8]))
        if name is None:
            raise DecodeError(f"not a known instruction (discriminator {bytes(data[:8]).hex()})")
        return name, _parse(self._args[name], data[8:], f"{name} arguments")


class AccountCoder:
    """Account data: the IDL's 8-byte discriminator, then the account's struct."""

    def __init__(self, idl: Mapping[str, Any], types: TypeCoder) -> None:
        self._types = types
        self._discriminators = _discriminators(idl.get("accounts", []))
        for name in self._discriminators:
            types.defined(name, f"account {name}")

    def discriminator(self, name: str) -> bytes:
        if name not in self._discriminators:
            raise UnknownIdlName(f"the IDL has no account {name!r}")
        return self._discriminators[name]

    def decode(self, name: str, data: bytes) -> dict[str, Any]:
        """The fields of account ``name`` after checking its discriminator (bytes past its size are ignored)."""
        disc = self.discriminator(name)
        if bytes(data[: len(disc)]) != disc:
            raise AccountDecodeError(f"account data is not a {name} (discriminator {bytes(data[:8]).hex()})")
        return _parse(self._types.defined(name), data[len(disc) :], name, AccountDecodeError)

    def encode(self, name: str, values: Mapping[str, Any]) -> bytes:
        """Account data of ``name``: discriminator and fields."""
        return self.discriminator(name) + self._types.encode(name, values)

    def size(self, name: str) -> int:
        """Bytes of an account ``name``: the discriminator and its struct."""
        return len(self.discriminator(name)) + self._types.size(name)


@dataclass(frozen=True)
class Event:
    """An IDL event decoded from the logs: its name and fields."""

    name: str
    data: dict[str, Any]


class EventCoder:
    """Events: ``sol_log_data`` of the IDL's 8-byte discriminator and the event's struct."""

    def __init__(self, idl: Mapping[str, Any], types: TypeCoder) -> None:
        self._types = types
        self._discriminators = _discriminators(idl.get("events", []))
        self._names = {disc: name for name, disc in self._discriminators.items()}
        for name in self._discriminators:
            types.defined(name, f"event {name}")

    def encode(self, name: str, values: Mapping[str, Any]) -> bytes:
        if name not in self._discriminators:
            raise UnknownIdlName(f"the IDL has no event {name!r}")
        return self._discriminators[name] + self._types.encode(name, values)

    def decode(self, data: bytes) -> Event | None:
        """The event in ``data``; None when it does not start with an IDL event's discriminator."""
        name = self._names.get(bytes(data[:8]))
        if name is None:
            return None
        return Event(name, _parse(self._types.defined(name), data[8:], f"event {name}"))

    def parse_logs(self, logs: Iterable[str]) -> list[Event]:
        """The IDL events in a transaction's ``Program data: <base64>`` log lines, in order.

        Lines that are not base64, or not one of the IDL's events, are skipped
        (another program may log data too).
        """
        events = []
        for line in logs:
            if not line.startswith(PROGRAM_DATA):
                continue
            try:
                data = base64.b64decode(line.removeprefix(PROGRAM_DATA), validate=True)
            except binascii.Error:
                continue
            event = self.decode(data)
            if event is not None:
                events.append(event)
        return events
