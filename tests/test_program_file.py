"""A bad program file is a clear error naming the file, never a Rust panic."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import section
from solders.pubkey import Pubkey

from perpkit import Client, InvalidProgramFile
from perpkit.backends.litesvm import LiteSvmBackend
from perpkit.program_file import check_program_bytes
from perpkit.resources import program_path

GOOD = program_path().read_bytes()


def corrupt(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(GOOD)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


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
