"""Check a program file (``.so``) before handing it to a runtime.

solders 0.26's LiteSVM panics on an ELF its loader refuses, with a message
that names neither the file nor the reason.  These checks follow the loader's
rules for SBPF ELFs (solana-sbpf 0.10, lenient parser for SBPFv0), so a bad
file gets an :class:`~perpkit.errors.InvalidProgramFile` saying what is wrong.
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


def check_program_bytes(data: bytes, path: Path | str = "<bytes>") -> None:
    """Raise :class:`InvalidProgramFile` unless ``data`` is a loadable SBPF ELF."""

    def bad(reason: str) -> InvalidProgramFile:
        return InvalidProgramFile(path, reason)

    if len(data) < 64:
        raise bad(f"{len(data)} bytes is too short for an ELF file")
    if data[:4] != b"\x7fELF":
        raise bad("not an ELF file (bad magic)")
    if data[4] != 2 or data[5] != 1:
        raise bad("not a 64-bit little-endian ELF")
    if data[7] != 0:
        raise bad(f"OS/ABI is {data[7]}, the loader wants 0 (System V)")
    (e_type, e_machine, _version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum,
     e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)  # fmt: skip
    if e_type != ET_DYN:
        raise bad(f"ELF type is {e_type}, the loader wants a shared object (ET_DYN = 3)")
    if e_machine not in (EM_BPF, EM_SBPF):
        raise bad(f"machine is {e_machine}, not BPF (247) or SBPF (263)")
    if e_flags > 3:
        raise bad(f"e_flags {e_flags} names no SBPF version the runtime accepts (0-3)")
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
