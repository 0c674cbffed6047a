#!/usr/bin/env python3
"""idlgen: generate the program's C header and the SDK's error classes from the IDL.

``idl/perps.json`` (current Anchor IDL spec) is the one source of truth for
accounts, instruction arguments, errors and constants.  This tool writes:

* ``program/include/perps_idl.h``: discriminators, error codes with their names
  and messages, constants, C structs of every type/account/argument list, the
  account list of every instruction (indices, signer/writable flags, names),
  a struct of named account references per instruction (filled once at
  dispatch, as Pinocchio's per-instruction account structs are, so handlers
  never pass interchangeable indices), and a seed builder for every account
  the IDL marks as a PDA, so no handler retypes seeds;
* ``client/perpkit/program_errors.py``: one exception class per IDL error.

Every struct must have the same bytes in C (repr C) and in borsh, so that the
program reads accounts in place and anchorpy decodes them: the tool refuses a
layout that would need implicit padding and asks for an explicit padding field.

Usage: ``python idlgen.py`` (write) or ``python idlgen.py --check`` (exit 1 if
a generated file is stale).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IDL_PATH = ROOT / "idl" / "perps.json"
HEADER_PATH = ROOT / "program" / "include" / "perps_idl.h"
ERRORS_PATH = ROOT / "client" / "perpkit" / "program_errors.py"

PRIMITIVES: dict[str, tuple[str, int, int]] = {
    # IDL type: (C type, size, alignment)
    "u8": ("uint8_t", 1, 1),
    "i8": ("int8_t", 1, 1),
    "bool": ("uint8_t", 1, 1),
    "u16": ("uint16_t", 2, 2),
    "i16": ("int16_t", 2, 2),
    "u32": ("uint32_t", 4, 4),
    "i32": ("int32_t", 4, 4),
    "u64": ("uint64_t", 8, 8),
    "i64": ("int64_t", 8, 8),
    # 128-bit values are stored as two little-endian u64 words: alignment 8
    # on every target, so host and BPF layouts agree.
    "u128": ("PkU128", 16, 8),
    "i128": ("PkU128", 16, 8),
    # Keys are compared as four u64 words, so they sit at 8-byte-aligned offsets.
    "pubkey": ("SolPubkey", 32, 8),
}


class IdlError(Exception):
    """The IDL cannot be turned into C layouts."""


@dataclass
class Layout:
    c_type: str
    size: int
    align: int
    array: int | None = None  # element count when the field is an array


def snake_upper(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def c_name(type_name: str) -> str:
    return "Perps" + type_name


def discriminator(prefix: str, name: str) -> bytes:
    return hashlib.sha256(f"{prefix}:{name}".encode()).digest()[:8]


class Generator:
    def __init__(self, idl: dict[str, Any]) -> None:
        self.idl = idl
        self.types = {t["name"]: t for t in idl.get("types", [])}
        self.layouts: dict[str, Layout] = {}
        self.struct_order: list[str] = []
        self.out: list[str] = []

    # -- layouts ---------------------------------------------------------
    def layout_of(self, ty: Any, where: str) -> Layout:
        if isinstance(ty, str):
            if ty not in PRIMITIVES:
                raise IdlError(f"{where}: type {ty!r} has no fixed C layout")
            c, size, align = PRIMITIVES[ty]
            return Layout(c, size, align)
        if "array" in ty:
            elem, count = ty["array"]
            if not isinstance(count, int):
                raise IdlError(f"{where}: array length must be a number")
            inner = self.layout_of(elem, where)
            if inner.array is not None:
                raise IdlError(f"{where}: nested arrays are not supported")
            return Layout(inner.c_type, inner.size * count, inner.align, count)
        if "defined" in ty:
            name = ty["defined"]["name"] if isinstance(ty["defined"], dict) else ty["defined"]
            return self.struct_layout(name)
        raise IdlError(f"{where}: type {ty!r} has no fixed C layout (no Vec, Option or String in zero-copy data)")

    def struct_layout(self, name: str) -> Layout:
        if name in self.layouts:
            return self.layouts[name]
        if name not in self.types:
            raise IdlError(f"type {name} is not defined in the IDL")
        body = self.types[name]["type"]
        if body["kind"] != "struct":
            raise IdlError(f"type {name}: only structs have a C layout")
        fields = [(f["name"], self.layout_of(f["type"], f"{name}.{f['name']}")) for f in body["fields"]]
        self.check_packed(name, fields)
        size = sum(f.size for _, f in fields)
        align = max((f.align for _, f in fields), default=1)
        layout = Layout(c_name(name), size, align)
        self.layouts[name] = layout
        self.struct_order.append(name)
        return layout

    @staticmethod
    def check_packed(name: str, fields: list[tuple[str, Layout]]) -> None:
        offset = 0
        align = 1
        for field_name, f in fields:
            if offset % f.align:
                raise IdlError(
                    f"{name}.{field_name} at offset {offset} needs {f.align}-byte alignment: "
                    "reorder the fields or add an explicit padding field before it"
                )
            offset += f.size
            align = max(align, f.align)
        if offset % align:
            raise IdlError(f"{name} is {offset} bytes, not a multiple of its alignment {align}: add tail padding")

    # -- emitters -------------------------------------------------------
    def emit(self, line: str = "") -> None:
        self.out.append(line)

    def emit_struct(self, name: str, fields: list[dict[str, Any]], docs: list[str] | None) -> None:
        for d in docs or []:
            self.emit(f"/* {d} */")
        self.emit("typedef struct {")
        offset = 0
        for f in fields:
            lay = self.layout_of(f["type"], f"{name}.{f['name']}")
            suffix = f"[{lay.array}]" if lay.array is not None else ""
            self.emit(f"  {lay.c_type} {f['name']}{suffix}; /* offset {offset} */")
            offset += lay.size
        self.emit(f"}} {name};")
        self.emit(f'_Static_assert(sizeof({name}) == {offset}, "{name} layout must match borsh");')
        offset = 0
        for f in fields:
            self.emit(f'_Static_assert(offsetof({name}, {f["name"]}) == {offset}, "{name}.{f["name"]} offset");')
            offset += self.layout_of(f["type"], name).size
        self.emit()

    def emit_args(self, ix_name: str, args: list[dict[str, Any]]) -> None:
        """Argument struct (natural C layout) and a decoder from the borsh bytes.

        Arguments are decoded once per instruction, field by field, so their
        borsh encoding need not match a C layout."""
        struct = c_name("".join(p.title() for p in ix_name.split("_")) + "Args")
        up = ix_name.upper()
        self.emit("typedef struct {")
        layouts = []
        for f in args:
            lay = self.layout_of(f["type"], f"{ix_name}.{f['name']}")
            layouts.append((f["name"], lay))
            suffix = f"[{lay.array}]" if lay.array is not None else ""
            self.emit(f"  {lay.c_type} {f['name']}{suffix};")
        if not args:
            self.emit("  uint8_t none;")
        self.emit(f"}} {struct};")
        size = sum(lay.size for _, lay in layouts)
        self.emit(f"#define PERPS_{up}_ARGS_SIZE {size}")
        self.emit(f"static inline void perps_decode_{ix_name}_args(const uint8_t *data, {struct} *out) {{")
        offset = 0
        for fname, lay in layouts:
            self.emit(f"  __builtin_memcpy(&out->{fname}, data + {offset}, {lay.size});")
            offset += lay.size
        if not args:
            self.emit("  (void)data;")
            self.emit("  out->none = 0;")
        self.emit("}")
        self.emit()

    def emit_accounts(self, ix_name: str, accounts: list[dict[str, Any]]) -> None:
        """A struct of named references to the instruction's accounts, and its filler.

        The entrypoint fills it once, after checking the account count and
        flags; handlers then name accounts (``a->vault``), never indices."""
        struct = c_name("".join(p.title() for p in ix_name.split("_")) + "Accounts")
        self.emit("typedef struct {")
        for a in accounts:
            docs = " ".join(a.get("docs", []))
            self.emit(f"  SolAccountInfo *{a['name']};" + (f" /* {docs} */" if docs else ""))
        self.emit(f"}} {struct};")
        self.emit(f"static inline void perps_{ix_name}_accounts(SolAccountInfo *accounts, {struct} *out) {{")
        for i, a in enumerate(accounts):
            self.emit(f"  out->{a['name']} = &accounts[{i}];")
        self.emit("}")
        self.emit()

    def emit_seed_builders(self, ix_name: str, accounts: list[dict[str, Any]], args: list[dict[str, Any]]) -> None:
        """For every account with IDL ``pda`` seeds: its seed count and a builder of the seed slices.

        ``perps_<ix>_<account>_seeds(a, args, seeds, bump)`` fills ``seeds[0..N-1]``
        from the IDL and ``seeds[N]`` with the bump byte: find the address with
        the first N, sign for it with all N + 1."""
        camel = "".join(p.title() for p in ix_name.split("_"))
        names = {a["name"] for a in accounts}
        arg_types = {a["name"]: a["type"] for a in args}
        for a in accounts:
            pda = a.get("pda")
            if not pda:
                continue
            if "program" in pda:
                raise IdlError(f"{ix_name}.{a['name']}: PDAs of another program are not supported")
            where = f"{ix_name}.{a['name']}"
            lines = []
            for i, seed in enumerate(pda["seeds"]):
                kind = seed["kind"]
                if kind == "const":
                    raw = bytes(seed["value"])
                    literal = "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else f"\\x{b:02x}" for b in raw)
                    lines.append(f'  seeds[{i}] = (SolBytes){{(const uint8_t *)"{literal}", {len(raw)}}};')
                elif kind == "account":
                    path = seed["path"]
                    if path not in names:
                        raise IdlError(f"{where}: seed account {path!r} is not an account of {ix_name}")
                    lines.append(f"  seeds[{i}] = (SolBytes){{a->{path}->key->x, 32}};")
                elif kind == "arg":
                    path = seed["path"]
                    if path not in arg_types:
                        raise IdlError(f"{where}: seed argument {path!r} is not an argument of {ix_name}")
                    size = self.layout_of(arg_types[path], where).size
                    lines.append(f"  seeds[{i}] = (SolBytes){{(const uint8_t *)&args->{path}, {size}}};")
                else:
                    raise IdlError(f"{where}: seed kind {kind!r} is not supported")
            count = len(pda["seeds"])
            up = f"PERPS_{ix_name.upper()}_{a['name'].upper()}"
            self.emit(f"/* {ix_name}.{a['name']}: PDA of {count} seeds (then the bump). */")
            self.emit(f"#define {up}_SEEDS {count}")
            self.emit(
                f"static inline void perps_{ix_name}_{a['name']}_seeds(const {c_name(camel + 'Accounts')} *a, "
                f"const {c_name(camel + 'Args')} *args, SolBytes seeds[{count + 1}], const uint8_t *bump) {{"
            )
            self.emit("  (void)a;")
            self.emit("  (void)args;")
            for line in lines:
                self.emit(line)
            self.emit(f"  seeds[{count}] = (SolBytes){{bump, 1}};")
            self.emit("}")
            self.emit()

    def string_table(self, c_ident: str, strings: list[str]) -> None:
        blob = "".join(s + "\\0" for s in strings)
        offsets = []
        pos = 0
        for s in strings:
            offsets.append(pos)
            pos += len(s.encode()) + 1
        self.emit(f'static const char {c_ident}[] = "{blob}";')
        self.emit(f"static const uint16_t {c_ident}_OFFSETS[{len(strings)}] = {{{', '.join(map(str, offsets))}}};")

    def header(self) -> str:
        idl = self.idl
        self.emit("/* Generated by program/tools/idlgen.py from idl/perps.json. Do not edit. */")
        self.emit("#ifndef PERPS_IDL_H")
        self.emit("#define PERPS_IDL_H")
        self.emit()
        self.emit('#include "sol/entrypoint.h"')
        self.emit('#include "sol/types.h"')
        self.emit()
        self.emit(f'#define PERPS_IDL_NAME "{idl["metadata"]["name"]}"')
        self.emit(f'#define PERPS_IDL_VERSION "{idl["metadata"]["version"]}"')
        self.emit()

        self.emit("/* ---- constants ---- */")
        for const in idl.get("constants", []):
            ty = const["type"]
            suffix = "ULL" if ty.startswith("u") else "LL"
            self.emit(f"#define PERPS_{const['name']} ({const['value']}{suffix})")
        self.emit()

        self.emit("/* ---- errors (custom program error codes) ---- */")
        errors = idl.get("errors", [])
        for i, e in enumerate(errors):
            if e["code"] != errors[0]["code"] + i:
                raise IdlError(f"error {e['name']}: codes must be consecutive")
        self.emit("enum {")
        for e in errors:
            self.emit(f"  PERPS_ERR_{snake_upper(e['name'])} = {e['code']}, /* {e['msg']} */")
        self.emit("};")
        if errors:
            self.emit(f"#define PERPS_ERROR_FIRST {errors[0]['code']}")
            self.emit(f"#define PERPS_ERROR_COUNT {len(errors)}")
            self.string_table("PERPS_ERROR_NAMES", [e["name"] for e in errors])
            self.string_table("PERPS_ERROR_MESSAGES", [e["msg"] for e in errors])
        self.emit()

        self.emit("/* ---- types ---- */")
        account_names = {a["name"] for a in idl.get("accounts", [])}
        for t in idl.get("types", []):
            self.struct_layout(t["name"])
        for name in self.struct_order:
            t = self.types[name]
            self.emit_struct(c_name(name), t["type"]["fields"], t.get("docs"))
            if name in account_names and self.layouts[name].align > 8:
                raise IdlError(f"account {name} needs more than 8-byte alignment")

        self.emit("/* ---- accounts: 8-byte discriminator, then the struct ---- */")
        for acc in idl.get("accounts", []):
            disc = bytes(acc["discriminator"])
            if disc != discriminator("account", acc["name"]):
                raise IdlError(f"account {acc['name']}: discriminator is not sha256('account:{acc['name']}')[:8]")
            up = snake_upper(acc["name"])
            self.emit(f"#define PERPS_DISC_{up} 0x{int.from_bytes(disc, 'little'):016x}ULL")
            self.emit(f"#define PERPS_SIZE_{up} (8 + sizeof({c_name(acc['name'])}))")
        self.emit()

        self.emit("/* ---- events: 8-byte discriminator (sha256('event:<Name>')), then the borsh struct ---- */")
        for event in idl.get("events", []):
            disc = bytes(event["discriminator"])
            if disc != discriminator("event", event["name"]):
                raise IdlError(f"event {event['name']}: discriminator is not sha256('event:{event['name']}')[:8]")
            self.emit(f"#define PERPS_EVENT_{snake_upper(event['name'])} 0x{int.from_bytes(disc, 'little'):016x}ULL")
        self.emit()

        self.emit("/* ---- instructions ---- */")
        self.emit("#define PERPS_ACC_SIGNER 1")
        self.emit("#define PERPS_ACC_WRITABLE 2")
        self.emit()
        fixed: dict[str, str] = {}
        for ix in idl["instructions"]:
            name = ix["name"]
            up = name.upper()
            disc = bytes(ix["discriminator"])
            if disc != discriminator("global", name):
                raise IdlError(f"instruction {name}: discriminator is not sha256('global:{name}')[:8]")
            self.emit(f"/* {name}: {' '.join(ix.get('docs', []))} */")
            self.emit(f"#define PERPS_IX_{up} 0x{int.from_bytes(disc, 'little'):016x}ULL")
            accounts = ix["accounts"]
            for i, a in enumerate(accounts):
                if "accounts" in a:
                    raise IdlError(f"instruction {name}: nested account groups are not supported")
                self.emit(f"#define PERPS_{up}_{a['name'].upper()} {i}")
                if "address" in a:
                    fixed.setdefault(a["address"], a["name"])
            self.emit(f"#define PERPS_{up}_NUM_ACCOUNTS {len(accounts)}")
            flags = [(1 if a.get("signer") else 0) | (2 if a.get("writable") else 0) for a in accounts]
            self.emit(
                f"static const uint8_t PERPS_{up}_ACCOUNT_FLAGS[{len(accounts)}] = {{{', '.join(map(str, flags))}}};"
            )
            self.string_table(f"PERPS_{up}_ACCOUNT_NAMES", [a["name"] for a in accounts])
            self.emit_args(name, ix["args"])
            self.emit_accounts(name, accounts)
            self.emit_seed_builders(name, accounts, ix["args"])
        self.emit("/* X-macro over the instructions: X(UPPER_NAME, lower_name, ArgsType, AccountsType) */")
        self.emit("#define PERPS_INSTRUCTIONS(X) \\")
        for ix in idl["instructions"]:
            camel = "".join(p.title() for p in ix["name"].split("_"))
            args_type, accounts_type = c_name(camel + "Args"), c_name(camel + "Accounts")
            self.emit(f"  X({ix['name'].upper()}, {ix['name']}, {args_type}, {accounts_type}) \\")
        self.emit("")
        self.emit()
        self.emit("/* ---- fixed program addresses named in the IDL ---- */")
        for address, acc_name in fixed.items():
            key = b58decode(address)
            self.emit(
                f"static const SolPubkey PERPS_ADDRESS_{acc_name.upper()} = "
                f"{{{{{', '.join(str(b) for b in key)}}}}}; /* {address} */"
            )
        self.emit()
        self.emit("#endif /* PERPS_IDL_H */")
        return "\n".join(self.out) + "\n"

    def python_errors(self) -> str:
        lines = [
            '"""Program errors of the perps program: one exception class each, and the code-to-class map.',
            "",
            "Generated by program/tools/idlgen.py from idl/perps.json. Do not edit.",
            "",
            ":func:`program_error` turns a custom error code into the exception to raise.",
            "This module imports :mod:`perpkit.errors`; that one does not import this.",
            '"""',
            "",
            "from collections.abc import Sequence",
            "",
            "from perpkit.errors import ProgramError, UnknownProgramError",
            "",
        ]
        names = []
        for e in self.idl.get("errors", []):
            names.append(e["name"])
            lines += [
                "",
                f"class {e['name']}(ProgramError):",
                f'    """{e["msg"]}."""',
                "",
                f"    code = {e['code']}",
                f'    error_name = "{e["name"]}"',
                f'    error_msg = "{e["msg"]}"',
                "",
            ]
        lines += ["", "BY_CODE: dict[int, type[ProgramError]] = {"]
        lines += [f"    {n}.code: {n}," for n in names]
        lines += [
            "}",
            '"""Custom error code of the perps program -> its exception class."""',
            "",
            "ERRORS_BY_CODE = BY_CODE",
            '"""The same map, by its older name."""',
            "",
            "",
            "def program_error(",
            "    code: int,",
            "    logs: Sequence[str] = (),",
            "    signature: str | None = None,",
            "    instruction_index: int | None = None,",
            ") -> ProgramError:",
            '    """The exception for custom error ``code`` of the perps program (UnknownProgramError if unlisted)."""',
            "    cls = BY_CODE.get(code)",
            "    if cls is None:",
            "        return UnknownProgramError(code, logs, signature, instruction_index)",
            "    return cls(logs, signature, instruction_index)",
            "",
            "",
            "__all__ = [",
        ]
        lines += [f'    "{n}",' for n in names]
        lines += ['    "BY_CODE",', '    "ERRORS_BY_CODE",', '    "program_error",', "]", ""]
        return "\n".join(lines)


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes(32, "big")
    return raw


def generate(idl_path: Path = IDL_PATH) -> dict[Path, str]:
    idl = json.loads(idl_path.read_text())
    gen = Generator(idl)
    header = gen.header()
    return {HEADER_PATH: header, ERRORS_PATH: gen.python_errors()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate perps_idl.h and program_errors.py from the IDL.")
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file differs from the IDL")
    args = parser.parse_args(argv)
    try:
        outputs = generate()
    except (IdlError, KeyError, ValueError) as exc:
        print(f"idlgen: error: {exc}", file=sys.stderr)
        return 1

    def shown(path: Path) -> str:
        return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)

    stale = []
    for path, text in outputs.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.write_text(text)
            print(f"idlgen: wrote {shown(path)}")
    if stale:
        for path in stale:
            print(f"idlgen: {shown(path)} is stale; run python program/tools/idlgen.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
