"""Check a program file (``.so``) before handing it to a runtime.

solders 0.26's LiteSVM panics on an ELF its loader refuses, with a message
that names neither the file nor the reason.  These checks follow the loader's
rules for SBPF ELFs, so a bad file gets an
:class:`~perpkit.errors.InvalidProgramFile` saying what is wrong:

* SBPFv0-v2 (``e_flags`` 0-2): solana-sbpf's lenient parser (section headers,
  one ``.text``, no writable data);
* SBPFv3 (``e_flags`` 3): solana-sbpf's strict parser (SIMD-0189), which
  reads only the ELF header and the program headers: a read-only ``PT_LOAD``
  at vaddr 0 (optional), then the bytecode ``PT_LOAD`` at ``1 << 32``, right
  after the ELF header, back to back, 8-aligned, ``e_entry`` in the bytecode.
"""

from __future__ import annotations

import struct
from pathlib import Path

from perpkit.errors import InvalidProgramFile

EM_BPF = 247
EM_SBPF = 263
ET_DYN = 3
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHT_NOBITS = 8
MAX_SECTION_NAME = 15

EHDR_SIZE = 64
PHDR_SIZE = 56
PT_LOAD = 1
PF_X = 1
PF_R = 4
INSN_SIZE = 8
MM_RODATA_START = 0
MM_BYTECODE_START = 1 << 32
MM_REGION_SIZE = 1 << 32
STRICT_SBPF_VERSION = 3
"""From this SBPF version on, the loader uses the strict ELF parser (SIMD-0189)."""


def read_program_file(path: Path | str) -> bytes:
    """Read ``path`` and check it is an SBPF shared object the loader can take."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidProgramFile(path, "no such file (build it with `make -C program`)") from None
    except OSError as exc:
        raise InvalidProgramFile(path, f"cannot read it: {exc.strerror}") from None
    check_program_bytes(data, path)
    return data


def sbpf_version(data: bytes, path: Path | str = "<bytes>") -> int:
    """The SBPF version of an ELF program file: its ``e_flags`` (0 for SBPFv0, 3 for SBPFv3, ...).

    Raises :class:`InvalidProgramFile` if ``data`` is not a 64-bit little-endian ELF file.
    """
    _check_elf_identity(data, path)
    return int(struct.unpack_from("<I", data, 48)[0])


def _check_elf_identity(data: bytes, path: Path | str) -> None:
    if len(data) < EHDR_SIZE:
        raise InvalidProgramFile(path, f"{len(data)} bytes is too short for an ELF file")
    if data[:4] != b"\x7fELF":
        raise InvalidProgramFile(path, "not an ELF file (bad magic)")
    if data[4] != 2 or data[5] != 1:
        raise InvalidProgramFile(path, "not a 64-bit little-endian ELF")


def check_program_bytes(data: bytes, path: Path | str = "<bytes>") -> None:
    """Raise :class:`InvalidProgramFile` unless ``data`` is a loadable SBPF ELF."""

    def bad(reason: str) -> InvalidProgramFile:
        return InvalidProgramFile(path, reason)

    version = sbpf_version(data, path)
    if version > STRICT_SBPF_VERSION:
        raise bad(f"e_flags {version} names no SBPF version the runtime accepts (0-3)")
    if version == STRICT_SBPF_VERSION:
        _check_strict(data, path)
        return
    if data[7] != 0:
        raise bad(f"OS/ABI is {data[7]}, the loader wants 0 (System V)")
    (e_type, e_machine, _version, e_entry, e_phoff, e_shoff, _e_flags, e_ehsize, e_phentsize, e_phnum,
     e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)  # fmt: skip
    if e_type != ET_DYN:
        raise bad(f"ELF type is {e_type}, the loader wants a shared object (ET_DYN = 3)")
    if e_machine not in (EM_BPF, EM_SBPF):
        raise bad(f"machine is {e_machine}, not BPF (247) or SBPF (263)")
    if e_ehsize != 64 or (e_phnum and e_phentsize != 56) or e_shentsize != 64:
        raise bad("unexpected ELF header or table entry sizes")
    if e_phoff + e_phnum * 56 > len(data):
        raise bad("program header table runs past the end of the file")
    if e_shnum == 0 or e_shoff + e_shnum * 64 > len(data):
        raise bad("section header table is missing or runs past the end of the file")
    if e_shstrndx >= e_shnum:
        raise bad("section name table index is out of range")

    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * 64) for i in range(e_shnum)]
    _, _, _, _, names_off, names_size, _, _, _, _ = sections[e_shstrndx]
    if names_off + names_size > len(data):
        raise bad("section name table runs past the end of the file")
    text = None
    for name_off, _type, flags, addr, offset, size, *_ in sections[1:]:
        end = data.find(b"\0", names_off + name_off)
        if end < 0:
            raise bad("unterminated section name")
        name = data[names_off + name_off : end].decode("latin-1")
        if len(name) > MAX_SECTION_NAME:
            raise bad(f"section name {name!r} is longer than the loader's {MAX_SECTION_NAME} characters")
        if offset + size > len(data):
            raise bad(f"section {name} runs past the end of the file")
        if (name.startswith(".bss") or (name.startswith(".data") and not name.startswith(".data.rel"))) and (
            flags & (SHF_ALLOC | SHF_WRITE) == SHF_ALLOC | SHF_WRITE
        ):
            raise bad(f"writable section {name}: SBPF programs cannot have read-write data")
        if name == ".text":
            if text is not None:
                raise bad("more than one .text section")
            text = (addr, size)
    if text is None:
        raise bad("no .text section")
    if not text[0] <= e_entry < text[0] + text[1] or (e_entry - text[0]) % 8:
        raise bad("the entrypoint is not an instruction inside .text")


def _check_strict(data: bytes, path: Path | str) -> None:
    """The strict parser's rules (SBPFv3): ELF header, program headers, entrypoint; sections are not read."""

    def bad(reason: str) -> InvalidProgramFile:
        return InvalidProgramFile(path, f"SBPFv3: {reason}")

    (_e_type, e_machine, e_version, e_entry, e_phoff, _e_shoff, _e_flags, e_ehsize, e_phentsize, e_phnum,
     _e_shentsize, _e_shnum, _e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)  # fmt: skip
    if data[6] != 1 or e_version != 1:
        raise bad("ELF version is not 1 (EV_CURRENT)")
    if data[7] != 0 or data[8] != 0:
        raise bad(f"OS/ABI {data[7]}, ABI version {data[8]}: the loader wants 0 and 0 (System V)")
    if any(data[9:16]):
        raise bad("the padding of the ELF identification is not all zero")
    if e_machine != EM_BPF:
        raise bad(f"machine is {e_machine}, the strict loader wants BPF (247)")
    if e_ehsize != EHDR_SIZE or e_phentsize != PHDR_SIZE:
        raise bad("unexpected ELF header or program header entry size")
    if e_phoff != EHDR_SIZE:
        raise bad(f"program headers at offset {e_phoff}, the loader wants them right after the ELF header (64)")
    if e_phnum == 0:
        raise bad("no program headers")
    table_end = EHDR_SIZE + e_phnum * PHDR_SIZE
    if table_end > len(data):
        raise bad("program header table runs past the end of the file")

    headers = [struct.unpack_from("<IIQQQQQQ", data, EHDR_SIZE + i * PHDR_SIZE) for i in range(e_phnum)]
    expected = [("read-only data", PF_R, MM_RODATA_START), ("bytecode", PF_X, MM_BYTECODE_START)]
    if headers[0][1] != PF_R:
        expected = expected[1:]  # no read-only data: the first header is the bytecode's
    elif e_phnum < 2:
        raise bad("only a read-only data program header: the bytecode one is missing")
    offset = table_end
    for index, ((what, flags, vaddr), header) in enumerate(zip(expected, headers, strict=False)):
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _align = header
        name = f"program header {index} ({what})"
        if p_type != PT_LOAD:
            raise bad(f"{name} has type {p_type}, not PT_LOAD (1)")
        if p_flags != flags:
            want = "PF_R (4)" if flags == PF_R else "PF_X (1)"
            raise bad(f"{name} has flags {p_flags:#x}, the loader wants exactly {want}")
        if p_offset != offset:
            raise bad(f"{name} starts at offset {p_offset}, the loader wants {offset} (right after the previous one)")
        if p_offset >= len(data):
            raise bad(f"{name} starts past the end of the file")
        if p_offset % INSN_SIZE or p_filesz % INSN_SIZE:
            raise bad(f"{name}: offset {p_offset} and size {p_filesz} must be multiples of 8")
        if p_vaddr != vaddr or p_paddr != vaddr:
            raise bad(f"{name} is at vaddr {p_vaddr:#x} (paddr {p_paddr:#x}), the loader wants {vaddr:#x}")
        if p_filesz != p_memsz:
            raise bad(f"{name} has filesz {p_filesz} != memsz {p_memsz}")
        if p_filesz > len(data) - p_offset:
            raise bad(f"{name} runs past the end of the file")
        if p_memsz >= MM_REGION_SIZE:
            raise bad(f"{name} is larger than its 4 GiB region")
        offset += p_filesz

    bytecode = headers[len(expected) - 1]
    start, size = bytecode[3], bytecode[6]
    if size == 0:
        raise bad("the bytecode segment is empty")
    if not start <= e_entry < start + size or e_entry % INSN_SIZE:
        raise bad(f"the entrypoint {e_entry:#x} is not an instruction inside the bytecode segment")
