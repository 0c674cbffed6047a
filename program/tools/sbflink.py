#!/usr/bin/env python3
"""sbflink: link clang BPF relocatable objects into an SBPF shared object (v0 or v3).

Upstream clang (``-target bpf -mcpu=v2``) writes ELF relocatable objects
(ET_REL).  The Solana loader takes an ELF shared object with a layout of its
own (SPEC section 8).  This tool is that last step, written for this project.
It re-lays the code out; it never rewrites an instruction into another one
(the only fields it writes are the immediates and, for v3 calls, the ``src``
field that tells a syscall from an internal call).

Common to both versions:

* every executable input section is placed in one ``.text``; every read-only
  input section (``.rodata``, ``.rodata.str1.1``, ``.rodata.cst16`` ...) in one
  ``.rodata``; writable data (``.data``, ``.bss``, common symbols) is refused;
* calls between the program's own functions become pc-relative immediates;
* a call to an undefined function must name a Solana syscall;
* ``lddw`` of an address gets the absolute virtual address in its two
  immediates, so no data relocation is left for the loader;
* the output depends only on the input bytes and their order: the same
  objects always give the same shared object.

SBPFv0 (``--sbpf-version 0``, the default; the lenient loader of SPEC 8):

* loaded sections have ``sh_addr == sh_offset`` (the program is mapped at
  ``MM_PROGRAM_START``, so a virtual address is ``0x1_0000_0000 + offset``);
* calls to syscalls keep the immediate ``-1`` and get a ``R_BPF_64_32`` entry
  in ``.rel.dyn`` naming the ``.dynsym`` symbol, which the loader replaces by
  the murmur3 hash of the name;
* ``.dynamic`` carries ``DT_SYMTAB``/``DT_STRTAB``/``DT_STRSZ``/``DT_SYMENT``
  and ``DT_REL``/``DT_RELSZ``/``DT_RELENT`` when relocations exist;
  ``e_entry`` is the ``entrypoint`` symbol;
* function pointers are refused: v0's ``callx`` reads its register from the
  immediate, clang writes it in ``dst``.

SBPFv3 (``--sbpf-version 3``), checked against the strict ELF parser of
``solana-sbpf`` (``Executable::load_with_strict_parser``; sbpf 0.21 of agave 4.1,
which solders 0.29 embeds, up to 0.23):

* ``e_flags`` 3, ``e_machine`` EM_BPF, ``e_phoff`` 64, identification bytes
  (OS/ABI, ABI version, padding) all zero;
* program headers right after the ELF header: ``PT_LOAD`` ``PF_R`` at vaddr
  0 (read-only data), then ``PT_LOAD`` ``PF_X`` at vaddr ``1 << 32``
  (bytecode); each starts where the previous one ends, offsets and sizes are
  multiples of 8, ``p_paddr == p_vaddr``, ``p_filesz == p_memsz``.  A program
  without read-only data keeps the read-only header, empty (sbpf 0.14 and
  later also take a file without it; every strict parser takes it empty);
* the read-only segment starts with 8 zero bytes, so no object of the
  program has the address 0 that C reads as NULL (the segment itself is at
  vaddr 0, as the loader requires);
* no ``.dynamic``, no dynamic symbols, no relocations: a syscall is ``call``
  with ``src`` 0 and ``imm = murmur3_32(name)``; an internal call is ``call``
  with ``src`` 1 and a pc-relative ``imm``; ``lddw`` holds absolute addresses
  (read-only data from 0, code from ``1 << 32``);
* function pointers work: the address of a function is ``1 << 32`` plus its
  byte offset in ``.text``, and ``callx`` (register in ``dst``, as clang
  writes it) jumps there;
* ``e_entry`` is the virtual address of ``entrypoint`` in the bytecode;
* section headers (``.rodata``, ``.text``, ``.shstrtab``) are written for
  tools; the loader does not read them.

Usage: ``python sbflink.py [--sbpf-version 3] -o out.so a.o b.o ...``
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
MM_RODATA_START = 0  # SBPFv3: read-only data segment
MM_BYTECODE_START = 0x1_0000_0000  # SBPFv3: bytecode segment
MM_REGION_SIZE = 0x1_0000_0000
INSN_SIZE = 8
RODATA_NULL_GUARD = 8  # SBPFv3: zero bytes at vaddr 0, so no object's address is NULL
SBPF_VERSIONS = (0, 3)
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
EHDR_SIZE, PHDR_SIZE, SHDR_SIZE = 64, 56, 64

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
OP_CALLX = 0x8D
CALL_SRC_SYSCALL = 0  # SBPFv3: `call` with src 0 calls the syscall whose murmur3 hash is the immediate
CALL_SRC_INTERNAL = 1  # `call` with src 1 is pc-relative (clang writes every call this way)

# Syscalls the Solana runtime registers (one registry, looked up by the
# murmur3 hash of the name, for SBPFv0 and SBPFv3 alike).  A call to any other
# undefined function would only fail at load time (v0: "unresolved symbol") or
# at run time (v3: "unsupported instruction"), so it is refused here instead.
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
    """The inputs cannot be linked into a loadable SBPF program."""


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 (x86, 32-bit): the loader's key for a syscall name (``ebpf::hash_symbol_name``)."""
    mask = 0xFFFF_FFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    def scramble(k: int) -> int:
        return (rotl((k * 0xCC9E2D51) & mask, 15) * 0x1B873593) & mask

    h = seed & mask
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        h = rotl(h ^ scramble(int.from_bytes(data[i : i + 4], "little")), 13)
        h = (h * 5 + 0xE654_6B64) & mask
    if len(data) > whole:
        h ^= scramble(int.from_bytes(data[whole:], "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EB_CA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2_AE35) & mask
    return h ^ (h >> 16)


SYSCALL_HASHES = {murmur3_32(name.encode()): name for name in sorted(KNOWN_SYSCALLS)}


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
                "SBPF programs have no mutable globals; make the data const or keep it on the stack"
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
                f"{name}: common symbol {symbol.name} is writable data; SBPF programs have no mutable globals"
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
    def __init__(self, objects: list[ObjectFile], sbpf_version: int) -> None:
        self.objects = objects
        self.sbpf_version = sbpf_version
        self.text = bytearray()
        self.rodata = bytearray()
        self.rodata_align = 8
        self.globals: dict[str, Location] = {}
        self.global_owner: dict[str, str] = {}
        self.syscall_relocs: list[tuple[int, str]] = []  # v0: (offset in .text, syscall name)
        self.rodata_offset = 0  # v0: file offset (= sh_addr) of .rodata, known once .text is laid out

    # -- addresses -----------------------------------------------------------
    def rodata_vaddr(self, offset: int) -> int:
        """Virtual address of byte ``offset`` of the merged read-only data."""
        if self.sbpf_version >= 3:
            return MM_RODATA_START + offset
        return MM_PROGRAM_START + self.rodata_offset + offset

    def text_vaddr(self, offset: int) -> int:
        """Virtual address of byte ``offset`` of the merged code (SBPFv3: what ``callx`` takes)."""
        assert self.sbpf_version >= 3
        return MM_BYTECODE_START + offset

    # -- layout --------------------------------------------------------------
    def place_sections(self) -> None:
        if self.sbpf_version >= 3 and any(
            sec.kind == "rodata" for obj in self.objects for sec in obj.sections.values()
        ):
            self.rodata.extend(b"\0" * RODATA_NULL_GUARD)
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
                if sym_shndx == -1 and name in KNOWN_SYSCALLS:
                    raise LinkError(f"{where}: taking the address of syscall {name} is not supported")
                raise LinkError(f"{where}: address of undefined data symbol {name}")
            addend = struct.unpack_from("<I", out, at + 4)[0] | struct.unpack_from("<I", out, at + 12)[0] << 32
            if loc.kind == "text":
                value = self.function_address(where, name, loc.offset + addend)
            else:
                value = self.rodata_vaddr(loc.offset + addend)
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
                if self.sbpf_version >= 3:
                    out[at + 1] = out[at + 1] & 0x0F | CALL_SRC_SYSCALL << 4
                    struct.pack_into("<I", out, at + 4, murmur3_32(name.encode()))
                else:
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
            if self.sbpf_version >= 3:
                out[at + 1] = out[at + 1] & 0x0F | CALL_SRC_INTERNAL << 4
        elif sec.kind == "rodata" and rtype == R_BPF_64_ABS64:
            if loc is None:
                raise LinkError(
                    f"{where}: pointer to {name} in read-only data: only pointers to read-only data"
                    + (" and functions" if self.sbpf_version >= 3 else "")
                    + " are supported"
                )
            addend = struct.unpack_from("<Q", out, at)[0]
            if loc.kind == "text":
                if self.sbpf_version < 3:
                    raise LinkError(
                        f"{where}: pointer to {name} in read-only data: only pointers to read-only data are "
                        "supported (function pointers need --sbpf-version 3)"
                    )
                value = self.function_address(where, name, loc.offset + addend)
            else:
                value = self.rodata_vaddr(loc.offset + addend)
            struct.pack_into("<Q", out, at, value)
        else:
            raise LinkError(f"{where}: unsupported relocation {kind_name} against {name or '?'}")

    def function_address(self, where: str, name: str, offset: int) -> int:
        """The value of a function pointer (SBPFv3 only): the vaddr ``callx`` jumps to."""
        if self.sbpf_version < 3:
            raise LinkError(
                f"{where}: taking the address of function {name} is not supported in SBPFv0 (no function "
                "pointers: v0's callx reads its register from the immediate); link with --sbpf-version 3"
            )
        if offset % INSN_SIZE or not 0 <= offset < len(self.text):
            raise LinkError(f"{where}: address of {name}+{offset:#x} is not an instruction of .text")
        return self.text_vaddr(offset)

    # -- checks of the finished code -----------------------------------------
    def check_calls(self) -> None:
        """Every call the loader would refuse, or fail on at run time, is refused here with its place."""
        count = len(self.text) // INSN_SIZE
        lddw_tails = set()
        pc = 0
        while pc < count:
            if self.text[pc * INSN_SIZE] == OP_LDDW:
                lddw_tails.add(pc + 1)
                pc += 1
            pc += 1
        pc = 0
        while pc < count:
            at = pc * INSN_SIZE
            opcode, regs = self.text[at], self.text[at + 1]
            if opcode == OP_LDDW:
                pc += 2
                continue
            if opcode == OP_CALLX:
                if self.sbpf_version < 3:
                    raise LinkError(
                        f"{self._where(at)}: callx (an indirect call through a function pointer) cannot run in "
                        "SBPFv0, whose callx reads its register from the immediate; link with --sbpf-version 3"
                    )
                if regs & 0x0F > 9:  # v3's callx jumps to the address in its dst register
                    raise LinkError(f"{self._where(at)}: callx through r{regs & 0x0F}, which is not r0-r9")
            if opcode == OP_CALL and self.sbpf_version >= 3:
                src = regs >> 4
                imm = struct.unpack_from("<i", self.text, at + 4)[0]
                if src == CALL_SRC_SYSCALL and imm & 0xFFFF_FFFF not in SYSCALL_HASHES:
                    raise LinkError(
                        f"{self._where(at)}: call to syscall hash {imm & 0xFFFF_FFFF:#010x}, not a Solana syscall"
                    )
                if src == CALL_SRC_INTERNAL:
                    target = pc + 1 + imm
                    if not 0 <= target < count or target in lddw_tails:
                        raise LinkError(f"{self._where(at)}: call to instruction {target}, which is not one of .text")
                    if target == pc:  # `call -1`: what `solana program deploy`'s verifier refuses
                        raise LinkError(f"{self._where(at)}: call to itself (call -1), an unresolved call")
                elif src != CALL_SRC_SYSCALL:
                    raise LinkError(f"{self._where(at)}: call with src {src}, neither a syscall (0) nor a function (1)")
            pc += 1

    def _where(self, text_offset: int) -> str:
        return f".text+{text_offset:#x} ({self._function_at(text_offset)})"

    def _function_at(self, text_offset: int) -> str:
        """Name of the function whose code holds ``text_offset`` (for error messages)."""
        best, best_offset = "?", -1
        for name, loc in self.globals.items():
            if loc.kind == "text" and best_offset < loc.offset <= text_offset:
                best, best_offset = name, loc.offset
        return f"in {best}" if best_offset >= 0 else "before any global function"


def _strtab(names: Sequence[str]) -> tuple[bytes, dict[str, int]]:
    blob = bytearray(b"\0")
    offsets: dict[str, int] = {"": 0}
    for n in names:
        if n not in offsets:
            offsets[n] = len(blob)
            blob += n.encode() + b"\0"
    return bytes(blob), offsets


def link(inputs: Sequence[tuple[str, bytes]], sbpf_version: int = 0) -> bytes:
    """Link relocatable BPF objects (name, bytes) into an SBPF ``.so`` of ``sbpf_version`` (0 or 3)."""
    if sbpf_version not in SBPF_VERSIONS:
        raise LinkError(f"SBPF version {sbpf_version} is not supported: use 0 or 3")
    if not inputs:
        raise LinkError("no input objects")
    linker = _Linker([_read_object(name, data) for name, data in inputs], sbpf_version)
    linker.place_sections()
    linker.collect_globals()
    entry = linker.globals.get("entrypoint")
    if entry is None or entry.kind != "text":
        raise LinkError("no global function named `entrypoint` is defined: the loader starts there")
    if not linker.text:
        raise LinkError("no executable code")
    if entry.offset % INSN_SIZE:
        raise LinkError("`entrypoint` is not instruction-aligned")
    if sbpf_version >= 3:
        return _emit_v3(linker, entry)
    return _emit_v0(linker, entry)


def _emit_v3(linker: _Linker, entry: Location) -> bytes:
    """The SBPFv3 layout: see the module docstring (and SPEC section 8)."""
    linker.apply_relocations()
    linker.check_calls()
    rodata = bytes(linker.rodata) + b"\0" * (_align(len(linker.rodata), INSN_SIZE) - len(linker.rodata))
    text = bytes(linker.text)
    if len(rodata) >= MM_REGION_SIZE or len(text) >= MM_REGION_SIZE:
        raise LinkError("a segment is larger than the 4 GiB region the loader maps it to")

    # (flags, vaddr, contents) of each PT_LOAD, in file order, right after the program header table.  The
    # read-only one is written even when empty: every strict parser takes it (the newer ones also take a
    # file without it), and the layout stays the same for every program.
    segments = [(PF_R, MM_RODATA_START, rodata), (PF_X, MM_BYTECODE_START, text)]
    offset = EHDR_SIZE + PHDR_SIZE * len(segments)
    phdrs = bytearray()
    body = bytearray()
    placed: dict[int, int] = {}  # vaddr -> file offset
    for flags, vaddr, contents in segments:
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, flags, offset, vaddr, vaddr, len(contents), len(contents), 8)
        placed[vaddr] = offset
        body += contents
        offset += len(contents)

    names = [".rodata", ".text", ".shstrtab"]
    shstrtab, sh_name = _strtab(names)
    shstrtab_off = offset
    shoff = _align(shstrtab_off + len(shstrtab), 8)
    # (name, type, flags, addr, offset, size, align)
    headers: list[tuple[str, int, int, int, int, int, int]] = []
    if rodata:
        headers.append(
            (".rodata", SHT_PROGBITS, SHF_ALLOC, MM_RODATA_START, placed[MM_RODATA_START], len(rodata),
             linker.rodata_align)
        )  # fmt: skip
    headers.append(
        (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, MM_BYTECODE_START, placed[MM_BYTECODE_START], len(text),
         INSN_SIZE)
    )  # fmt: skip
    headers.append((".shstrtab", SHT_STRTAB, 0, 0, shstrtab_off, len(shstrtab), 1))
    shdrs = bytearray(SHDR_SIZE)
    for name, stype, flags, addr, off, size, align in headers:
        shdrs += struct.pack("<IIQQQQIIQQ", sh_name[name], stype, flags, addr, off, size, 0, 0, align, 0)
    shnum = len(headers) + 1

    ehdr = _elf_header(entry=linker.text_vaddr(entry.offset), phnum=len(segments), shoff=shoff, shnum=shnum, flags=3)
    image = bytearray(ehdr + phdrs + body + shstrtab)
    image += b"\0" * (shoff - len(image)) + shdrs
    return bytes(image)


def _elf_header(*, entry: int, phnum: int, shoff: int, shnum: int, flags: int) -> bytes:
    """The 64-byte ELF header: ET_DYN, EM_BPF, program headers right after it, names in the last section."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # 64-bit, little-endian, version 1, System V ABI 0, padding 0
    return ident + struct.pack(
        "<HHIQQQIHHHHHH",
        ET_DYN,
        EM_BPF,
        1,
        entry,
        EHDR_SIZE,
        shoff,
        flags,
        EHDR_SIZE,
        PHDR_SIZE,
        phnum,
        SHDR_SIZE,
        shnum,
        shnum - 1,
    )


def _emit_v0(linker: _Linker, entry: Location) -> bytes:
    """The SBPFv0 layout (SPEC section 8), unchanged since the first fixture: its bytes are pinned."""
    n_phdrs = 4 if linker.rodata else 3
    text_off = _align(64 + 56 * n_phdrs, 8)
    rodata_off = _align(text_off + len(linker.text), linker.rodata_align)
    linker.rodata_offset = rodata_off
    linker.apply_relocations()
    linker.check_calls()

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

    ehdr = _elf_header(entry=text_off + entry.offset, phnum=n_phdrs, shoff=shoff, shnum=shnum, flags=0)
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
    parser.add_argument(
        "--sbpf-version",
        type=int,
        choices=SBPF_VERSIONS,
        default=0,
        help="SBPF version of the output: 0 (lenient loader, .dynamic + relocations) or 3 (strict layout, "
        "static syscalls); default 0",
    )
    parser.add_argument("objects", nargs="+", type=Path, help="relocatable BPF objects, in link order")
    args = parser.parse_args(argv)
    try:
        image = link([(str(p), p.read_bytes()) for p in args.objects], args.sbpf_version)
    except (LinkError, OSError) as exc:
        print(f"sbflink: error: {exc}", file=sys.stderr)
        return 1
    tmp = args.output.with_suffix(args.output.suffix + ".tmp")
    tmp.write_bytes(image)
    tmp.replace(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
