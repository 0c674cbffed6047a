"""sbflink, SBPFv0 (its default): small C programs compiled by clang-19, linked, loaded and run in LiteSVM.

The SBPFv3 output is tested in test_relinker_v3.py.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import sbflink
from conftest import require_tool, run
from elftools.elf.elffile import ELFFile
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata

BPF_FLAGS = ["-target", "bpf", "-mcpu=v2", "-O2", "-mllvm", "-bpf-stack-size=4096", "-ffreestanding", "-Wall"]
PRELUDE = """
typedef unsigned long long u64;
void sol_log_(const char *, u64);
void sol_log_64_(u64, u64, u64, u64, u64);
"""


def compile_objects(tmp_path: Path, sources: dict[str, str]) -> list[tuple[str, bytes]]:
    clang = require_tool("clang-19")
    objects = []
    for name, code in sources.items():
        src = tmp_path / f"{name}.c"
        src.write_text(PRELUDE + code)
        obj = tmp_path / f"{name}.o"
        run([clang, *BPF_FLAGS, "-c", str(src), "-o", str(obj)])
        objects.append((obj.name, obj.read_bytes()))
    return objects


def link(tmp_path: Path, sources: dict[str, str]) -> bytes:
    return sbflink.link(compile_objects(tmp_path, sources))


def execute(so: bytes, data: bytes = b"") -> list[str]:
    """Load the program into a fresh LiteSVM, invoke it once, return its log lines."""
    svm = LiteSVM()
    program = Pubkey.new_unique()
    svm.add_program(program, so)
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    tx = Transaction([payer], Message([Instruction(program, data, [])], payer.pubkey()), svm.latest_blockhash())
    outcome = svm.send_transaction(tx)
    assert not isinstance(outcome, FailedTransactionMetadata), outcome.meta().logs()
    return [line.removeprefix("Program log: ") for line in outcome.logs() if line.startswith("Program log: ")]


def sections(so: bytes) -> dict[str, dict[str, int]]:
    import io

    elf = ELFFile(io.BytesIO(so))
    return {s.name: dict(s.header) for s in elf.iter_sections() if s.name}


def check_layout(so: bytes) -> None:
    """The SBPFv0 rules of SPEC section 8."""
    e_type, e_machine, _, e_entry = struct.unpack_from("<HHIQ", so, 16)
    e_flags = struct.unpack_from("<I", so, 48)[0]
    assert (e_type, e_machine, e_flags) == (3, 247, 0)
    secs = sections(so)
    names = list(secs)
    assert names.count(".text") == 1
    assert not any(n.startswith(".rodata.") or n.startswith(".data") or n == ".bss" for n in names)
    for name, h in secs.items():
        if h["sh_flags"] & 2:  # SHF_ALLOC
            assert h["sh_addr"] == h["sh_offset"], name
            assert h["sh_size"] > 0, f"empty loaded section {name}"
    text = secs[".text"]
    assert text["sh_addr"] <= e_entry < text["sh_addr"] + text["sh_size"]


def test_internal_calls_across_objects_and_recursion(tmp_path: Path) -> None:
    so = link(
        tmp_path,
        {
            "main": """
                u64 triple(u64 x);                       /* defined in helper.o */
                static __attribute__((noinline)) u64 fib(u64 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
                u64 entrypoint(const unsigned char *input) {
                    sol_log_64_(fib(input[0] + 15), triple(input[0] + 5), 0, 0, 0);
                    return 0;
                }""",
            "helper": """
                __attribute__((noinline)) u64 add_one(u64 x) { return x + 1; }
                __attribute__((noinline)) u64 triple(u64 x) { return add_one(x) * 3 - 3; }""",
        },
    )
    check_layout(so)
    # input[0] is the low byte of the account count: 0
    assert execute(so) == ["0x262, 0xf, 0x0, 0x0, 0x0"]  # fib(15) = 610, triple(5) = 15


def test_syscall_relocations(tmp_path: Path) -> None:
    so = link(
        tmp_path,
        {
            "main": """
                void sol_log_compute_units_(void);
                u64 entrypoint(const unsigned char *input) {
                    (void)input;
                    sol_log_("one", 3);
                    sol_log_64_(1, 2, 3, 4, 5);
                    sol_log_("two", 3);
                    sol_log_compute_units_();
                    return 0;
                }"""
        },
    )
    check_layout(so)
    import io

    elf = ELFFile(io.BytesIO(so))
    reldyn = elf.get_section_by_name(".rel.dyn")
    dynsym = elf.get_section_by_name(".dynsym")
    relocs = [(r["r_info_type"], dynsym.get_symbol(r["r_info_sym"]).name) for r in reldyn.iter_relocations()]
    assert relocs == [
        (10, "sol_log_"),
        (10, "sol_log_64_"),
        (10, "sol_log_"),
        (10, "sol_log_compute_units_"),
    ]
    text = elf.get_section_by_name(".text")
    for r in reldyn.iter_relocations():
        imm = struct.unpack_from("<i", so, r["r_offset"] + 4)[0]
        assert so[r["r_offset"]] == 0x85 and imm == -1  # call -1, resolved by the loader
        assert text["sh_offset"] <= r["r_offset"] < text["sh_offset"] + text["sh_size"]
    logs = execute(so)
    assert logs[:3] == ["one", "0x1, 0x2, 0x3, 0x4, 0x5", "two"]


def test_constants_from_several_rodata_sections(tmp_path: Path) -> None:
    objects = compile_objects(
        tmp_path,
        {
            "main": """
                static const char greeting[] = "hello, rodata";      /* .rodata */
                static const u64 table[4] = {11, 22, 33, 44};        /* .rodata.cst32 */
                static const char *const names[] = {"zero", "one", "two"};  /* pointers: R_BPF_64_ABS64 */
                const char *pick(u64 i);
                u64 entrypoint(const unsigned char *input) {
                    u64 i = input[0];                                /* 0: defeats constant folding */
                    sol_log_(greeting, sizeof greeting - 1);
                    sol_log_("a string literal", 16);                /* .rodata.str1.1 */
                    sol_log_(names[i + 2], 3);
                    sol_log_(pick(i + 1), 5);
                    sol_log_64_(table[i + 3], table[i], 0, 0, 0);
                    return 0;
                }""",
            "more": """
                static const char *const words[] = {"alpha", "bravo", "charl"};
                const char *pick(u64 i) { return words[i]; }""",
        },
    )
    import io

    input_sections = {s.name for _, data in objects for s in ELFFile(io.BytesIO(data)).iter_sections()}
    assert {".rodata", ".rodata.str1.1"} <= input_sections
    assert any(n.startswith(".rodata.cst") for n in input_sections)
    so = sbflink.link(objects)
    check_layout(so)
    assert ".rodata" in sections(so)
    assert execute(so) == ["hello, rodata", "a string literal", "two", "bravo", "0x2c, 0xb, 0x0, 0x0, 0x0"]


def test_program_without_read_only_data(tmp_path: Path) -> None:
    so = link(
        tmp_path,
        {
            "main": """
                u64 entrypoint(const unsigned char *input) {
                    sol_log_64_(input[0] + 7, 0, 0, 0, 0);
                    return 0;
                }"""
        },
    )
    check_layout(so)
    assert ".rodata" not in sections(so)  # no empty .rodata next to .dynsym
    assert execute(so) == ["0x7, 0x0, 0x0, 0x0, 0x0"]


def test_program_without_syscalls_has_no_relocations(tmp_path: Path) -> None:
    so = link(tmp_path, {"main": "u64 entrypoint(const unsigned char *input) { return input[0]; }"})
    check_layout(so)
    assert ".rel.dyn" not in sections(so)
    assert execute(so) == []


def test_same_objects_give_the_same_bytes(tmp_path: Path) -> None:
    objects = compile_objects(
        tmp_path, {"main": 'u64 entrypoint(const unsigned char *i) { sol_log_("x", 1); return i[0]; }'}
    )
    assert sbflink.link(objects) == sbflink.link(list(objects))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("int counter = 5; u64 entrypoint(const unsigned char *i) { counter += i[0]; return counter; }",
         r"writable section \.data .*counter"),
        ("static u64 scratch[4]; u64 entrypoint(const unsigned char *i) { scratch[i[0] & 3] = 1; return scratch[1]; }",
         r"writable section \.bss"),
        ("u64 start(const unsigned char *i) { return i[0]; }", "no global function named `entrypoint`"),
        ("void *memcpy(void *, const void *, unsigned long);"
         "u64 entrypoint(unsigned char *i) { memcpy(i, i + 8, i[0]); return 0; }",
         "call to undefined function memcpy, which is not a Solana syscall"),
    ],
)  # fmt: skip
def test_refusals(tmp_path: Path, code: str, message: str) -> None:
    objects = compile_objects(tmp_path, {"main": code})
    with pytest.raises(sbflink.LinkError, match=message):
        sbflink.link(objects)


def test_unknown_relocation_type_is_refused(tmp_path: Path) -> None:
    [(name, data)] = compile_objects(
        tmp_path, {"main": 'u64 entrypoint(const unsigned char *i) { sol_log_("x", 1); return i[0]; }'}
    )
    import io

    elf = ELFFile(io.BytesIO(data))
    rel = elf.get_section_by_name(".rel.text")
    patched = bytearray(data)
    # r_info = (sym << 32) | type: make the first relocation type 7, which BPF does not define for .text
    patched[rel["sh_offset"] + 8] = 7
    with pytest.raises(sbflink.LinkError, match=r"\.text\+0x8 of main\.o: unsupported relocation type 7"):
        sbflink.link([(name, bytes(patched))])


def test_duplicate_symbols_and_non_bpf_input(tmp_path: Path) -> None:
    objects = compile_objects(
        tmp_path,
        {
            "a": "u64 f(void) { return 1; } u64 entrypoint(const unsigned char *i) { return f() + i[0]; }",
            "b": "u64 f(void) { return 2; }",
        },
    )
    with pytest.raises(sbflink.LinkError, match=r"symbol f is defined in both a\.o and b\.o"):
        sbflink.link(objects)
    with pytest.raises(sbflink.LinkError, match="not an ELF object"):
        sbflink.link([("junk.o", b"not an object")])
    with pytest.raises(sbflink.LinkError, match="expected a relocatable object"):
        sbflink.link([("perps.so", (Path(__file__).parents[1] / "fixtures" / "perps.so").read_bytes())])


def test_command_line_reports_errors(tmp_path: Path) -> None:
    objects = compile_objects(tmp_path, {"main": "u64 start(void) { return 0; }"})
    (tmp_path / "main.o").write_bytes(objects[0][1])
    rc = sbflink.main(["-o", str(tmp_path / "out.so"), str(tmp_path / "main.o")])
    assert rc == 1
    assert not (tmp_path / "out.so").exists()
