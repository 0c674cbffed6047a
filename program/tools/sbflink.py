#!/usr/bin/env python3
"""sbflink: link clang BPF relocatable objects into an SBPFv0 shared object.

Upstream clang (``-target bpf``) writes ELF relocatable objects (ET_REL).  The
Solana loader takes an ELF shared object (ET_DYN) with a layout of its own
(SPEC section 8).  This tool is that last step, written for this project:

* every executable input section is placed in one ``.text``; every read-only
  input section (``.rodata``, ``.rodata.str1.1``, ``.rodata.cst16`` ...) in one
  ``.rodata``; writable data (``.data``, ``.bss``, common symbols) is refused;
* loaded sections have ``sh_addr == sh_offset`` (the program is mapped at
  ``MM_PROGRAM_START``, so a virtual address is ``0x1_0000_0000 + offset``);
* calls between the program's own functions become pc-relative immediates
  (the loader registers every pc-relative call target itself);
* calls to undefined functions are syscalls: the immediate stays ``-1`` and a
  ``R_BPF_64_32`` entry in ``.rel.dyn`` names the ``.dynsym`` symbol, which
  the loader replaces by the murmur3 hash of the name;
* ``lddw`` of a data address gets ``0x1_0000_0000 + vaddr`` in its two
  immediates, so no data relocation is left for the loader;
* ``.dynamic`` carries ``DT_SYMTAB``/``DT_STRTAB``/``DT_STRSZ``/``DT_SYMENT``
  and ``DT_REL``/``DT_RELSZ``/``DT_RELENT`` when relocations exist;
  ``e_entry`` is the ``entrypoint`` symbol.

The output depends only on the input bytes and their order: the same objects
always give the same shared object.

Usage: ``python sbflink.py -o out.so a.o b.o ...``
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit(
        "sbflink: pyelftools is missing; install the project (pip install -e '.[dev]') or run: pip install pyelftools"
    )

MM_PROGRAM_START = 0x1_0000_0000
INSN_SIZE = 8
EM_BPF = 247
ET_DYN = 3

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

SHT_PROGBITS = 1
SHT_STRTAB = 3
SHT_DYNAMIC = 6
SHT_NOBITS = 8
SHT_REL = 9
SHT_DYNSYM = 11

PT_LOAD = 1
PT_DYNAMIC = 2
PF_X, PF_R = 1, 4

DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
DT_REL, DT_RELSZ, DT_RELENT, DT_FLAGS = 17, 18, 19, 30
DF_TEXTREL = 0x4

STB_GLOBAL = 1
STT_NOTYPE, STT_FUNC = 0, 2

R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_32 = 10
RELOC_NAMES = {
    0: "R_BPF_NONE",
    1: "R_BPF_64_64",
    2: "R_BPF_64_ABS64",
    3: "R_BPF_64_ABS32",
    4: "R_BPF_64_NODYLD32",
    8: "R_BPF_64_RELATIVE",
    10: "R_BPF_64_32",
}

OP_LDDW = 0x18
OP_CALL = 0x85

# Syscalls the Solana runtime registers for SBPFv0 programs.  A call to any
# other undefined function would only fail at load time with an opaque
# "unresolved symbol", so it is refused here with a hint instead.
KNOWN_SYSCALLS = frozenset(
    {
        "abort",
        "sol_panic_",
        "sol_log_",
        "sol_log_64_",
        "sol_log_compute_units_",
        "sol_log_pubkey",
        "sol_log_data",
        "sol_create_program_address",
        "sol_try_find_program_address",
        "sol_sha256",
        "sol_keccak256",
        "sol_blake3",
        "sol_secp256k1_recover",
        "sol_poseidon",
        "sol_curve_validate_point",
        "sol_curve_group_op",
        "sol_curve_multiscalar_mul",
        "sol_alt_bn128_group_op",
        "sol_alt_bn128_compression",
        "sol_big_mod_exp",
        "sol_get_clock_sysvar",
        "sol_get_epoch_schedule_sysvar",
        "sol_get_fees_sysvar",
        "sol_get_rent_sysvar",
        "sol_get_last_restart_slot",
        "sol_get_epoch_rewards_sysvar",
        "sol_get_sysvar",
        "sol_get_epoch_stake",
        "sol_memcpy_",
        "sol_memmove_",
        "sol_memcmp_",
        "sol_memset_",
        "sol_invoke_signed_c",
        "sol_invoke_signed_rust",
        "sol_alloc_free_",
        "sol_set_return_data",
        "sol_get_return_data",
        "sol_get_processed_sibling_instruction",
        "sol_get_stack_height",
        "sol_remaining_compute_units",
    }
)


class LinkError(Exception):
    """The inputs cannot be linked into a loadable SBPFv0 program."""


@dataclass
class InputSection:
    obj: str
    index: int
    name: str
    data: bytearray
    align: int
    kind: str  # "text" or "rodata"
    offset: int = 0  # offset inside the merged output section


@dataclass
class Location:
    """Where a symbol ended up: output section kind and offset inside it."""

    kind: str
    offset: int


@dataclass
class ObjectFile:
    name: str
    elf: ELFFile
    sections: dict[int, InputSection] = field(default_factory=dict)
    symbols: list[tuple[str, int, str, str]] = field(default_factory=list)
    # (name, shndx or -1 for undefined, bind, type) per symbol-table index
    symbol_values: list[int] = field(default_factory=list)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _where(obj: ObjectFile, section_index: int) -> str:
    section = obj.elf.get_section(section_index)
    return f"{section.name} of {obj.name}"


def _read_object(name: str, data: bytes) -> ObjectFile:
    try:
        elf = ELFFile(io.BytesIO(data))
    except ELFError as exc:
        raise LinkError(f"{name}: not an ELF object ({exc})") from None
    if elf.elfclass != 64 or not elf.little_endian:
        raise LinkError(f"{name}: expected a 64-bit little-endian ELF object")
    if elf["e_type"] != "ET_REL":
        raise LinkError(f"{name}: expected a relocatable object (ET_REL), got {elf['e_type']}")
    if elf["e_machine"] != "EM_BPF":
        raise LinkError(f"{name}: expected e_machine EM_BPF (247), got {elf['e_machine']}")
    obj = ObjectFile(name=name, elf=elf)

    for index, section in enumerate(elf.iter_sections()):
        flags = section["sh_flags"]
        size = section["sh_size"]
        if not flags & SHF_ALLOC or size == 0:
            continue
        if flags & SHF_WRITE or section["sh_type"] == "SHT_NOBITS":
            raise LinkError(
                f"{name}: writable section {section.name} ({size} bytes{_symbols_in(elf, index)}): "
                "SBPFv0 programs have no mutable globals; make the data const or keep it on the stack"
            )
        if section["sh_type"] != "SHT_PROGBITS":
            raise LinkError(f"{name}: unsupported loadable section {section.name} ({section['sh_type']})")
        kind = "text" if flags & SHF_EXECINSTR else "rodata"
        align = max(1, section["sh_addralign"])
        if kind == "text" and (size % INSN_SIZE or (align > INSN_SIZE and align % INSN_SIZE)):
            raise LinkError(f"{name}: {section.name} is not a whole number of instructions")
        obj.sections[index] = InputSection(name, index, section.name, bytearray(section.data()), align, kind)

    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise LinkError(f"{name}: no symbol table")
    for symbol in symtab.iter_symbols():
        shndx = symbol["st_shndx"]
        bind = symbol["st_info"]["bind"]
        stype = symbol["st_info"]["type"]
        if shndx == "SHN_COMMON":
            raise LinkError(
                f"{name}: common symbol {symbol.name} is writable data; SBPFv0 programs have no mutable globals"
            )
        if shndx == "SHN_UNDEF":
            index = -1
        elif shndx == "SHN_ABS":
            index = -2
        else:
            index = int(shndx)
        obj.symbols.append((symbol.name, index, bind, stype))
        obj.symbol_values.append(symbol["st_value"])
    return obj


def _symbols_in(elf: ELFFile, section_index: int) -> str:
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        return ""
    names = [
        s.name
        for s in symtab.iter_symbols()
        if s["st_shndx"] == section_index and s.name and s["st_info"]["type"] != "STT_SECTION"
    ]
    return f": {', '.join(names)}" if names else ""


class _Linker:
    def __init__(self, objects: list[ObjectFile]) -> None:
        self.objects = objects
        self.text = bytearray()
        self.rodata = bytearray()
        self.rodata_align = 8
        self.globals: dict[str, Location] = {}
        self.global_owner: dict[str, str] = {}
        self.syscall_relocs: list[tuple[int, str]] = []  # (offset in .text, syscall name)
        self.rodata_offset = 0  # file offset (= vaddr) of .rodata, known once .text is laid out

    # -- layout --------------------------------------------------------------
    def place_sections(self) -> None:
        for obj in self.objects:
            for sec in obj.sections.values():
                out = self.text if sec.kind == "text" else self.rodata
                if sec.kind == "rodata":
                    self.rodata_align = max(self.rodata_align, sec.align)
                    alignment = sec.align
                else:
                    alignment = INSN_SIZE
                pad = _align(len(out), alignment) - len(out)
                out.extend(b"\0" * pad)
                sec.offset = len(out)
                out.extend(sec.data)

    def location(self, obj: ObjectFile, sym_index: int) -> Location | None:
        name, shndx, _bind, _type = obj.symbols[sym_index]
        if shndx >= 0:
            sec = obj.sections.get(shndx)
            if sec is None:
                return None
            return Location(sec.kind, sec.offset + obj.symbol_values[sym_index])
        if shndx == -1:
            return self.globals.get(name)
        return None

    def collect_globals(self) -> None:
        weak: dict[str, Location] = {}
        for obj in self.objects:
            for i, (name, shndx, bind, _stype) in enumerate(obj.symbols):
                if shndx < 0 or bind not in ("STB_GLOBAL", "STB_WEAK") or not name:
                    continue
                loc = self.location(obj, i)
                if loc is None:
                    continue
                if bind == "STB_WEAK":
                    weak.setdefault(name, loc)
                    continue
                if name in self.globals:
                    raise LinkError(f"symbol {name} is defined in both {self.global_owner[name]} and {obj.name}")
                self.globals[name] = loc
                self.global_owner[name] = obj.name
        for name, loc in weak.items():
            self.globals.setdefault(name, loc)

    # -- relocation ----------------------------------------------------------
    def apply_relocations(self) -> None:
        for obj in self.objects:
            for reloc_section in obj.elf.iter_sections():
                if not isinstance(reloc_section, RelocationSection):
                    continue
                if reloc_section.is_RELA():
                    raise LinkError(f"{obj.name}: RELA relocations ({reloc_section.name}) are not expected from BPF")
                target = obj.sections.get(reloc_section["sh_info"])
                if target is None:
                    continue  # debug info, BTF, address-significance tables: not loaded
                for reloc in reloc_section.iter_relocations():
                    self.apply_one(obj, target, reloc["r_offset"], reloc["r_info_type"], reloc["r_info_sym"])

    def apply_one(self, obj: ObjectFile, sec: InputSection, offset: int, rtype: int, sym: int) -> None:
        out = self.text if sec.kind == "text" else self.rodata
        at = sec.offset + offset
        sym_name, sym_shndx = obj.symbols[sym][0], obj.symbols[sym][1]
        name = sym_name or (obj.elf.get_section(sym_shndx).name if sym_shndx >= 0 else "?")
        where = f"{sec.name}+{offset:#x} of {obj.name}"
        kind_name = RELOC_NAMES.get(rtype, f"type {rtype}")
        loc = self.location(obj, sym)

        if sec.kind == "text" and rtype == R_BPF_64_64:
            if out[at] != OP_LDDW:
                raise LinkError(f"{where}: {kind_name} on an instruction that is not lddw")
            if loc is None:
                raise LinkError(f"{where}: address of undefined data symbol {name}")
            if loc.kind == "text":
                raise LinkError(
                    f"{where}: taking the address of function {name} is not supported (no function pointers)"
                )
            addend = struct.unpack_from("<I", out, at + 4)[0] | struct.unpack_from("<I", out, at + 12)[0] << 32
            value = MM_PROGRAM_START + self.rodata_offset + loc.offset + addend
            struct.pack_into("<I", out, at + 4, value & 0xFFFF_FFFF)
            struct.pack_into("<I", out, at + 12, value >> 32)
        elif sec.kind == "text" and rtype == R_BPF_64_32:
            if out[at] != OP_CALL:
                raise LinkError(f"{where}: {kind_name} on an instruction that is not call")
            if loc is None:
                if obj.symbols[sym][1] != -1:
                    raise LinkError(f"{where}: call to {name}, which is in a section that is not loaded")
                if name not in KNOWN_SYSCALLS:
                    raise LinkError(
                        f"{where}: call to undefined function {name}, which is not a Solana syscall; "
                        "define it in the program (clang emits memcpy/memset for struct copies)"
                    )
                struct.pack_into("<i", out, at + 4, -1)
                self.syscall_relocs.append((at, name))
                return
            if loc.kind != "text":
                raise LinkError(f"{where}: call to {name}, which is data, not a function")
            if loc.offset % INSN_SIZE:
                raise LinkError(f"{where}: call target {name} is not instruction-aligned")
            addend = struct.unpack_from("<i", out, at + 4)[0]
            if addend != -1:
                raise LinkError(f"{where}: unexpected call addend {addend}")
            imm = (loc.offset - at) // INSN_SIZE - 1
            struct.pack_into("<i", out, at + 4, imm)
        elif sec.kind == "rodata" and rtype == R_BPF_64_ABS64:
            if loc is None or loc.kind == "text":
                raise LinkError(
                    f"{where}: pointer to {name} in read-only data: only pointers to read-only data are supported"
                )
            addend = struct.unpack_from("<Q", out, at)[0]
            struct.pack_into("<Q", out, at, MM_PROGRAM_START + self.rodata_offset + loc.offset + addend)
        else:
            raise LinkError(f"{where}: unsupported relocation {kind_name} against {name or '?'}")


def _strtab(names: Sequence[str]) -> tuple[bytes, dict[str, int]]:
    blob = bytearray(b"\0")
    offsets: dict[str, int] = {"": 0}
    for n in names:
        if n not in offsets:
            offsets[n] = len(blob)
            blob += n.encode() + b"\0"
    return bytes(blob), offsets


def link(inputs: Sequence[tuple[str, bytes]]) -> bytes:
    """Link relocatable BPF objects (name, bytes) into an SBPFv0 ``.so``."""
    if not inputs:
        raise LinkError("no input objects")
    linker = _Linker([_read_object(name, data) for name, data in inputs])
    linker.place_sections()
    linker.collect_globals()
    entry = linker.globals.get("entrypoint")
    if entry is None or entry.kind != "text":
        raise LinkError("no global function named `entrypoint` is defined: the loader starts there")
    if not linker.text:
        raise LinkError("no executable code")

    n_phdrs = 4 if linker.rodata else 3
    text_off = _align(64 + 56 * n_phdrs, 8)
    rodata_off = _align(text_off + len(linker.text), linker.rodata_align)
    linker.rodata_offset = rodata_off
    linker.apply_relocations()

    syscalls = sorted({name for _, name in linker.syscall_relocs})
    dynstr, dynstr_off = _strtab(["entrypoint", *syscalls])
    text_end = text_off + len(linker.text)
    cursor = rodata_off + len(linker.rodata) if linker.rodata else text_end

    dynamic_off = _align(cursor, 8)
    dyn_entries_count = 6 + (4 if linker.syscall_relocs else 0)
    dynamic_size = dyn_entries_count * 16
    dynsym_off = dynamic_off + dynamic_size
    sym_index = {name: i + 2 for i, name in enumerate(syscalls)}
    dynsym = bytearray(24)  # null symbol
    text_shndx = 1
    dynsym += struct.pack(
        "<IBBHQQ", dynstr_off["entrypoint"], STB_GLOBAL << 4 | STT_FUNC, 0, text_shndx, text_off + entry.offset, 0
    )
    for name in syscalls:
        dynsym += struct.pack("<IBBHQQ", dynstr_off[name], STB_GLOBAL << 4 | STT_NOTYPE, 0, 0, 0, 0)
    dynstr_at = dynsym_off + len(dynsym)
    rel_off = _align(dynstr_at + len(dynstr), 8)
    rel = bytearray()
    for at, name in linker.syscall_relocs:
        rel += struct.pack("<QQ", text_off + at, sym_index[name] << 32 | R_BPF_64_32)
    dyn_end = rel_off + len(rel) if rel else dynstr_at + len(dynstr)

    dynamic = bytearray()
    entries = []
    if rel:
        entries += [(DT_FLAGS, DF_TEXTREL), (DT_REL, rel_off), (DT_RELSZ, len(rel)), (DT_RELENT, 16)]
    entries += [
        (DT_SYMTAB, dynsym_off),
        (DT_SYMENT, 24),
        (DT_STRTAB, dynstr_at),
        (DT_STRSZ, len(dynstr)),
        (DT_NULL, 0),
        (DT_NULL, 0),
    ]
    for tag, val in entries:
        dynamic += struct.pack("<QQ", tag, val)
    assert len(dynamic) == dynamic_size

    # Section headers: null, .text, [.rodata], .dynamic, .dynsym, .dynstr, [.rel.dyn], .shstrtab
    names = [".text", ".rodata", ".dynamic", ".dynsym", ".dynstr", ".rel.dyn", ".shstrtab"]
    shstrtab, sh_name = _strtab(names)
    shstrtab_off = dyn_end
    shoff = _align(shstrtab_off + len(shstrtab), 8)

    headers: list[tuple[str, int, int, int, int, int, int, int, int]] = []
    # (name, type, flags, offset, size, link, info, align, entsize); addr == offset if ALLOC
    headers.append((".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_off, len(linker.text), 0, 0, 8, 0))
    if linker.rodata:
        headers.append(
            (".rodata", SHT_PROGBITS, SHF_ALLOC, rodata_off, len(linker.rodata), 0, 0, linker.rodata_align, 0)
        )
    idx_dynsym = len(headers) + 2
    idx_dynstr = len(headers) + 3
    headers.append((".dynamic", SHT_DYNAMIC, SHF_ALLOC, dynamic_off, dynamic_size, idx_dynstr, 0, 8, 16))
    headers.append((".dynsym", SHT_DYNSYM, SHF_ALLOC, dynsym_off, len(dynsym), idx_dynstr, 1, 8, 24))
    headers.append((".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_at, len(dynstr), 0, 0, 1, 0))
    if rel:
        headers.append((".rel.dyn", SHT_REL, SHF_ALLOC, rel_off, len(rel), idx_dynsym, 0, 8, 16))
    headers.append((".shstrtab", SHT_STRTAB, 0, shstrtab_off, len(shstrtab), 0, 0, 1, 0))

    shdrs = bytearray(64)
    for name, stype, flags, off, size, link_, info, align, entsize in headers:
        addr = off if flags & SHF_ALLOC else 0
        shdrs += struct.pack("<IIQQQQIIQQ", sh_name[name], stype, flags, addr, off, size, link_, info, align, entsize)
    shnum = len(headers) + 1

    phdrs = bytearray()

    def phdr(ptype: int, flags: int, off: int, size: int, align: int) -> bytes:
        return struct.pack("<IIQQQQQQ", ptype, flags, off, off, off, size, size, align)

    phdrs += phdr(PT_LOAD, PF_R | PF_X, text_off, len(linker.text), 8)
    if linker.rodata:
        phdrs += phdr(PT_LOAD, PF_R, rodata_off, len(linker.rodata), 8)
    phdrs += phdr(PT_LOAD, PF_R, dynamic_off, dyn_end - dynamic_off, 8)
    phdrs += phdr(PT_DYNAMIC, PF_R, dynamic_off, dynamic_size, 8)
    assert len(phdrs) == 56 * n_phdrs

    ehdr = bytearray(b"\x7fELF\x02\x01\x01" + b"\0" * 9)
    ehdr += struct.pack(
        "<HHIQQQIHHHHHH",
        ET_DYN,
        EM_BPF,
        1,
        text_off + entry.offset,
        64,
        shoff,
        0,
        64,
        56,
        n_phdrs,
        64,
        shnum,
        shnum - 1,
    )

    image = bytearray(ehdr + phdrs)
    image += b"\0" * (text_off - len(image)) + linker.text
    if linker.rodata:
        image += b"\0" * (rodata_off - len(image)) + linker.rodata
    image += b"\0" * (dynamic_off - len(image)) + dynamic + dynsym + dynstr
    if rel:
        image += b"\0" * (rel_off - len(image)) + rel
    image += shstrtab
    image += b"\0" * (shoff - len(image)) + shdrs
    return bytes(image)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, type=Path, help="shared object to write")
    parser.add_argument("objects", nargs="+", type=Path, help="relocatable BPF objects, in link order")
    args = parser.parse_args(argv)
    try:
        image = link([(str(p), p.read_bytes()) for p in args.objects])
    except (LinkError, OSError) as exc:
        print(f"sbflink: error: {exc}", file=sys.stderr)
        return 1
    tmp = args.output.with_suffix(args.output.suffix + ".tmp")
    tmp.write_bytes(image)
    tmp.replace(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
