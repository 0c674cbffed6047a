"""A bad program file is a clear error naming the file, never a Rust panic."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import ROOT, require_sbpf_v3_runtime, section
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey

from perpkit import Client, InvalidProgramFile
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.program_file import check_program_bytes, sbpf_version

GOOD = (ROOT / "fixtures" / "perps-v0.so").read_bytes()
"""The SBPFv0 build: the lenient parser's rules."""
GOOD_V3 = (ROOT / "fixtures" / "perps.so").read_bytes()
"""The SBPFv3 build (the deployment target): the strict parser's rules."""


def corrupt(offset: int, fmt: str, value: int, data: bytes = GOOD) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short for an ELF file"),
        (b"\x7fELF" + bytes(60), "not a 64-bit little-endian ELF"),
        (b"MZ" + GOOD[2:], "not an ELF file"),
        (corrupt(16, "<H", 2), "the loader wants a shared object"),
        (corrupt(18, "<H", 62), "not BPF"),
        (corrupt(48, "<I", 9), "e_flags 9"),
        (GOOD[: len(GOOD) - 100], "section header table is missing or runs past the end"),
        (corrupt(24, "<Q", 0), "entrypoint is not an instruction inside .text"),
        (
            corrupt(
                section(GOOD, ".rodata")[0],
                "<I",
                struct.unpack_from("<I", GOOD, section(GOOD, ".text")[0])[0],
            ),
            "more than one .text section",
        ),
    ],
)
def test_bad_files_are_named_errors(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "broken.so"
    path.write_bytes(data)
    backend = LiteSvmBackend()
    with pytest.raises(InvalidProgramFile, match=reason) as caught:
        backend.load_program(Pubkey.new_unique(), path)
    assert caught.value.path == path and str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidProgramFile, match="no such file"):
        LiteSvmBackend().load_program(Pubkey.new_unique(), tmp_path / "nope.so")


def test_loader_panic_becomes_a_named_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A file that passes our checks but not the loader's: LiteSVM panics; we report it, quietly."""
    rel_offset = section(GOOD, ".rel.dyn")[1]
    bad = bytearray(GOOD)
    bad[rel_offset + 8] = 5  # relocation type 5: not one the loader knows
    check_program_bytes(bytes(bad))  # our structural checks let it through
    path = tmp_path / "bad-reloc.so"
    path.write_bytes(bytes(bad))
    with pytest.raises(InvalidProgramFile, match=r"bad-reloc\.so: the runtime's loader refused it"):
        LiteSvmBackend().load_program(Pubkey.new_unique(), path)
    assert "panicked" not in capfd.readouterr().err


async def test_client_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "perps.so"
    path.write_bytes(b"garbage")
    with pytest.raises(InvalidProgramFile, match=str(path)):
        await Client.embedded(program=path)


def test_sbpf_version() -> None:
    assert sbpf_version(GOOD_V3) == 3
    assert sbpf_version(GOOD) == 0
    assert sbpf_version(corrupt(48, "<I", 2)) == 2
    with pytest.raises(InvalidProgramFile, match="too short for an ELF file"):
        sbpf_version(b"\x7fELF")
    with pytest.raises(InvalidProgramFile, match=r"x\.so: not an ELF file"):
        sbpf_version(b"MZ" + bytes(100), "x.so")


# SBPFv3: the ELF header (64 bytes), then program header 0 (read-only data) at 64, program header 1 (bytecode) at
# 120; in a program header, p_type +0, p_flags +4, p_offset +8, p_vaddr +16, p_paddr +24, p_filesz +32, p_memsz +40.
PH0, PH1 = 64, 120
TEXT_OFFSET = struct.unpack_from("<Q", GOOD_V3, PH1 + 8)[0]
RODATA_SIZE = struct.unpack_from("<Q", GOOD_V3, PH0 + 32)[0]


def v3(*patches: tuple[int, str, int]) -> bytes:
    data = GOOD_V3
    for offset, fmt, value in patches:
        data = corrupt(offset, fmt, value, data)
    return data


BAD_V3 = [
    (v3((48, "<I", 4)), "e_flags 4 names no SBPF version the runtime accepts"),
    (v3((6, "B", 0)), "SBPFv3: ELF version is not 1"),
    (v3((7, "B", 3)), "SBPFv3: OS/ABI 3, ABI version 0: the loader wants 0 and 0"),
    (v3((8, "B", 1)), "ABI version 1"),
    (v3((12, "B", 1)), "padding of the ELF identification is not all zero"),
    (v3((18, "<H", 263)), "machine is 263, the strict loader wants BPF"),
    (v3((54, "<H", 64)), "unexpected ELF header or program header entry size"),
    (v3((32, "<Q", 72)), "program headers at offset 72, the loader wants them right after the ELF header"),
    (v3((56, "<H", 0)), "no program headers"),
    (GOOD_V3[:100], "program header table runs past the end of the file"),
    (v3((56, "<H", 1)), "only a read-only data program header: the bytecode one is missing"),
    (v3((PH0, "<I", 2)), r"program header 0 \(read-only data\) has type 2, not PT_LOAD"),
    (v3((PH0 + 4, "<I", 5)), r"program header 0 \(bytecode\) has flags 0x5, the loader wants exactly PF_X"),
    (v3((PH1 + 4, "<I", 5)), r"program header 1 \(bytecode\) has flags 0x5, the loader wants exactly PF_X"),
    (v3((PH0 + 8, "<Q", 184)), r"program header 0 \(read-only data\) starts at offset 184, the loader wants 176"),
    (v3((PH1 + 8, "<Q", TEXT_OFFSET + 8)), rf"program header 1 \(bytecode\) starts at offset {TEXT_OFFSET + 8}"),
    (v3((PH0 + 16, "<Q", 8), (PH0 + 24, "<Q", 8)), r"program header 0 \(read-only data\) is at vaddr 0x8"),
    (v3((PH1 + 24, "<Q", 0)), r"program header 1 \(bytecode\) is at vaddr 0x100000000 \(paddr 0x0\)"),
    (v3((PH0 + 40, "<Q", RODATA_SIZE + 8)), rf"filesz {RODATA_SIZE} != memsz {RODATA_SIZE + 8}"),
    (v3((PH0 + 32, "<Q", RODATA_SIZE - 4), (PH0 + 40, "<Q", RODATA_SIZE - 4)), "must be multiples of 8"),
    (GOOD_V3[: TEXT_OFFSET + 16], r"program header 1 \(bytecode\) runs past the end of the file"),
    (v3((24, "<Q", 0)), "the entrypoint 0x0 is not an instruction inside the bytecode segment"),
    (v3((24, "<Q", (1 << 32) + 4)), "the entrypoint 0x100000004 is not an instruction"),
]


@pytest.mark.parametrize(("data", "reason"), BAD_V3)
def test_bad_v3_files_are_named_errors(data: bytes, reason: str) -> None:
    """Each broken SBPFv3 file gets the strict parser's reason, in words."""
    with pytest.raises(InvalidProgramFile, match=reason) as caught:
        check_program_bytes(data, "broken.so")
    assert str(caught.value).startswith("broken.so: ")


def minimal_v3(*, rodata: bytes | None, extra_headers: int = 0) -> bytes:
    """A hand-made SBPFv3 file (`mov r0, 0; exit`), without section headers, as the loader also takes it."""
    text = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
    phnum = (1 if rodata is None else 2) + extra_headers
    offset = 64 + 56 * phnum
    headers = b""
    if rodata is not None:
        headers += struct.pack("<IIQQQQQQ", 1, 4, offset, 0, 0, len(rodata), len(rodata), 8)
        offset += len(rodata)
    headers += struct.pack("<IIQQQQQQ", 1, 1, offset, 1 << 32, 1 << 32, len(text), len(text), 8)
    headers += bytes(56) * extra_headers  # the loader reads only the first two
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 3, 247, 1, 1 << 32, 64, 0, 3, 64, 56, phnum, 64, 0, 0)
    return ehdr + headers + (rodata or b"") + text


GOOD_V3_VARIANTS = [
    pytest.param(GOOD_V3, id="perps.so"),
    pytest.param(minimal_v3(rodata=None), id="no read-only header"),
    pytest.param(minimal_v3(rodata=b""), id="empty read-only header"),
    pytest.param(minimal_v3(rodata=bytes(8), extra_headers=1), id="a third program header"),
    pytest.param(v3((40, "<Q", 10**9), (60, "<H", 7)), id="section headers are not read"),
    pytest.param(v3((16, "<H", 2)), id="e_type is not read"),
]


@pytest.mark.parametrize("data", GOOD_V3_VARIANTS)
def test_well_formed_v3_files_pass(data: bytes) -> None:
    check_program_bytes(data)
    assert sbpf_version(data) == 3


def v3_runtime() -> LiteSVM:
    require_sbpf_v3_runtime()
    return LiteSVM()


@pytest.mark.parametrize("data", GOOD_V3_VARIANTS)
def test_the_loader_takes_what_passes(data: bytes) -> None:
    v3_runtime().add_program(Pubkey.new_unique(), data)


@pytest.mark.parametrize(("data", "reason"), BAD_V3)
def test_the_loader_refuses_what_is_refused(data: bytes, reason: str) -> None:
    """Our checks are the loader's: each file refused above is refused by the real one (solders >= 0.27)."""
    svm = v3_runtime()
    with pytest.raises(BaseException) as caught:  # LiteSVMError, in the loader's words
        svm.add_program(Pubkey.new_unique(), data)
    assert type(caught.value).__name__ in ("LiteSVMError", "PanicException"), caught.value
