"""sbflink --sbpf-version 3: small C programs compiled by clang-19, linked, checked against the SBPFv3 layout
of SPEC section 8 and, on a runtime that has SBPFv3 (solders >= 0.27), loaded and run.

The layout checks run everywhere; the runs skip on older solders (the anchorpy lane's 0.26 has no SBPFv3).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import sbflink
from conftest import ROOT, require_sbpf_v3_runtime
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from test_relinker import compile_objects

from perpkit.program_file import check_program_bytes, sbpf_version

MM_BYTECODE_START = 1 << 32
PT_LOAD, PF_X, PF_R = 1, 1, 4
OP_LDDW, OP_CALL, OP_CALLX = 0x18, 0x85, 0x8D


def link3(tmp_path: Path, sources: dict[str, str]) -> bytes:
    return sbflink.link(compile_objects(tmp_path, sources), sbpf_version=3)


def execute(so: bytes, data: bytes = b"") -> tuple[list[str], int]:
    """Load an SBPFv3 program into a fresh LiteSVM, invoke it once: (its log lines, its return code)."""
    require_sbpf_v3_runtime()
    svm = LiteSVM()
    program = Pubkey.new_unique()
    svm.add_program(program, so)
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    tx = Transaction([payer], Message([Instruction(program, data, [])], payer.pubkey()), svm.latest_blockhash())
    outcome = svm.send_transaction(tx)
    code = 0
    if isinstance(outcome, FailedTransactionMetadata):
        logs = outcome.meta().logs()
        failed = [line for line in logs if "failed: custom program error: 0x" in line]
        assert failed, logs  # anything but the program's own return code is a failure of the link
        code = int(failed[-1].rsplit("0x", 1)[1], 16)
    else:
        logs = outcome.logs()
    return [line.removeprefix("Program log: ") for line in logs if line.startswith("Program log: ")], code


def decode(text: bytes) -> list[tuple[int, int, int, int]]:
    """(pc, opcode, regs byte, immediate) of each instruction: lddw's 64-bit one, the signed 32-bit one otherwise."""
    out, pc = [], 0
    while pc * 8 < len(text):
        opcode, regs = text[pc * 8], text[pc * 8 + 1]
        if opcode == OP_LDDW:
            (low,), (high,) = struct.unpack_from("<I", text, pc * 8 + 4), struct.unpack_from("<I", text, pc * 8 + 12)
            out.append((pc, opcode, regs, high << 32 | low))
            pc += 2
        else:
            out.append((pc, opcode, regs, struct.unpack_from("<i", text, pc * 8 + 4)[0]))
            pc += 1
    return out


class Layout:
    """The parts of an SBPFv3 file SPEC section 8 talks about, read with struct only."""

    def __init__(self, so: bytes) -> None:
        self.so = so
        (self.e_type, self.e_machine, _, self.e_entry, self.e_phoff, self.e_shoff, self.e_flags, _, _,
         self.e_phnum) = struct.unpack_from("<HHIQQQIHHH", so, 16)  # fmt: skip
        self.phdrs = [struct.unpack_from("<IIQQQQQQ", so, 64 + 56 * i) for i in range(self.e_phnum)]
        _, _, ro_off, _, _, ro_size, _, _ = self.phdrs[0]
        _, _, text_off, _, _, text_size, _, _ = self.phdrs[1]
        self.rodata = so[ro_off : ro_off + ro_size]
        self.text = so[text_off : text_off + text_size]

    def insns(self) -> list[tuple[int, int, int, int]]:
        return decode(self.text)

    def section_names(self) -> list[str]:
        import io

        from elftools.elf.elffile import ELFFile

        return [s.name for s in ELFFile(io.BytesIO(self.so)).iter_sections() if s.name]


def check_layout(so: bytes) -> Layout:
    """The SBPFv3 rules of SPEC section 8 (and the SDK's strict-parser checks)."""
    layout = Layout(so)
    assert so[:4] == b"\x7fELF" and so[4:7] == bytes([2, 1, 1]) and not any(so[7:16])
    assert (layout.e_type, layout.e_machine, layout.e_flags, layout.e_phoff) == (3, 247, 3, 64)
    assert layout.e_phnum == 2
    expected_offset = 64 + 2 * 56
    for (p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _), (flags, vaddr) in zip(
        layout.phdrs, [(PF_R, 0), (PF_X, MM_BYTECODE_START)], strict=True
    ):
        assert (p_type, p_flags, p_vaddr, p_paddr) == (PT_LOAD, flags, vaddr, vaddr)
        assert p_offset == expected_offset and p_offset % 8 == 0 and p_filesz % 8 == 0
        assert p_filesz == p_memsz
        expected_offset += p_filesz
    assert MM_BYTECODE_START <= layout.e_entry < MM_BYTECODE_START + len(layout.text)
    assert layout.e_entry % 8 == 0
    names = layout.section_names()
    assert not {".dynamic", ".dynsym", ".dynstr", ".rel.dyn"} & set(names), names
    if layout.rodata:
        assert layout.rodata[:8] == bytes(8)  # nothing of the program sits at the address 0 (NULL)
    hashes = {sbflink.murmur3_32(name.encode()) for name in sbflink.KNOWN_SYSCALLS}
    count = len(layout.text) // 8
    for pc, opcode, regs, imm in layout.insns():
        if opcode == OP_CALL:
            assert regs >> 4 in (0, 1), f"call at {pc}: src {regs >> 4}"
            if regs >> 4 == 0:
                assert imm & 0xFFFF_FFFF in hashes, f"call at {pc}: unknown syscall hash {imm & 0xFFFF_FFFF:#x}"
            else:
                assert 0 <= pc + 1 + imm < count and imm != -1, f"call at {pc}: target {pc + 1 + imm}"
    check_program_bytes(so)
    assert sbpf_version(so) == 3
    return layout


def calls(layout: Layout) -> list[tuple[int, int]]:
    """(src, imm) of every `call`."""
    return [(regs >> 4, imm) for _, opcode, regs, imm in layout.insns() if opcode == OP_CALL]


def test_internal_calls_across_objects_and_recursion(tmp_path: Path) -> None:
    so = link3(
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
    layout = check_layout(so)
    internal = [imm for src, imm in calls(layout) if src == 1]
    assert len(internal) >= 4  # entrypoint -> fib, triple; fib -> fib; triple -> add_one
    assert execute(so) == (["0x262, 0xf, 0x0, 0x0, 0x0"], 0)  # fib(15) = 610, triple(5) = 15


def test_syscalls_are_static_calls_by_hash(tmp_path: Path) -> None:
    so = link3(
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
    layout = check_layout(so)
    # murmur3_32 of the names, as the runtime registers them (known values)
    assert [(src, imm & 0xFFFF_FFFF) for src, imm in calls(layout)] == [
        (0, 0x207559BD),  # sol_log_
        (0, 0x5C2A3178),  # sol_log_64_
        (0, 0x207559BD),
        (0, sbflink.murmur3_32(b"sol_log_compute_units_")),
    ]
    logs, code = execute(so)
    assert code == 0 and logs[:3] == ["one", "0x1, 0x2, 0x3, 0x4, 0x5", "two"]


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
    so = sbflink.link(objects, sbpf_version=3)
    layout = check_layout(so)
    assert ".rodata" in layout.section_names()
    # lddw of read-only data holds its absolute address: from 0, inside the read-only segment
    data_addresses = [imm for _, opcode, _, imm in layout.insns() if opcode == OP_LDDW]
    assert data_addresses and all(8 <= a < len(layout.rodata) for a in data_addresses)
    assert execute(so) == (["hello, rodata", "a string literal", "two", "bravo", "0x2c, 0xb, 0x0, 0x0, 0x0"], 0)


def test_program_without_read_only_data(tmp_path: Path) -> None:
    so = link3(
        tmp_path,
        {
            "main": """
                u64 entrypoint(const unsigned char *input) {
                    sol_log_64_(input[0] + 7, 0, 0, 0, 0);
                    return 0;
                }"""
        },
    )
    layout = check_layout(so)
    assert layout.rodata == b"" and layout.phdrs[0][2] == layout.phdrs[1][2]  # an empty read-only segment
    assert ".rodata" not in layout.section_names()
    assert execute(so) == (["0x7, 0x0, 0x0, 0x0, 0x0"], 0)


def test_return_code_without_syscalls(tmp_path: Path) -> None:
    so = link3(tmp_path, {"main": "u64 entrypoint(const unsigned char *input) { return input[0] + 40; }"})
    layout = check_layout(so)
    assert calls(layout) == []
    assert execute(so) == ([], 40)  # input[0] is the low byte of the account count: 0


FUNCTION_POINTERS = {
    "main": """
        typedef u64 (*op_fn)(u64, u64);
        static __attribute__((noinline)) u64 add(u64 a, u64 b) { return a + b; }
        static __attribute__((noinline)) u64 mul(u64 a, u64 b) { return a * b; }
        u64 sub(u64 a, u64 b);                                /* global, in ops.o */
        u64 twice(op_fn f, u64 a, u64 b);                     /* calls through the pointer, in ops.o */
        static const op_fn table[3] = {add, mul, sub};        /* R_BPF_64_ABS64 to .text in .rodata */
        u64 entrypoint(const unsigned char *input) {
            u64 i = input[0];                                 /* 0: defeats constant folding */
            op_fn volatile chosen = i ? mul : add;            /* lddw of function addresses */
            sol_log_64_(table[i](6, 7), table[i + 1](6, 7), table[i + 2](50, 8), chosen(20, 22), twice(mul, 3, 4));
            return 0;
        }""",
    "ops": """
        u64 sub(u64 a, u64 b) { return a - b; }
        u64 twice(u64 (*f)(u64, u64), u64 a, u64 b) { return f(f(a, b), b); }""",
}


def test_function_pointers_through_callx(tmp_path: Path) -> None:
    so = link3(tmp_path, FUNCTION_POINTERS)
    layout = check_layout(so)
    insns = layout.insns()
    callx = [(pc, regs) for pc, opcode, regs, _ in insns if opcode == OP_CALLX]
    assert len(callx) >= 4, "clang turned the indirect calls into direct ones: the test no longer tests callx"
    assert all(regs & 0x0F < 10 and regs >> 4 == 0 for _, regs in callx)  # the register is in dst, as v3 reads it
    # the address of a function is 1 << 32 + its offset, the start of an instruction of .text
    function_addresses = {imm for _, opcode, _, imm in insns if opcode == OP_LDDW and imm >= MM_BYTECODE_START}
    table_entries = {
        struct.unpack_from("<Q", layout.rodata, off)[0]
        for off in range(0, len(layout.rodata) - 7, 8)
        if struct.unpack_from("<Q", layout.rodata, off)[0] >= MM_BYTECODE_START
    }
    assert len(function_addresses) >= 2 and len(table_entries) == 3
    starts = {MM_BYTECODE_START + pc * 8 for pc, *_ in insns}
    assert function_addresses | table_entries <= starts
    # add(6, 7), mul(6, 7), sub(50, 8), add(20, 22), mul(mul(3, 4), 4)
    assert execute(so) == (["0xd, 0x2a, 0x2a, 0x2a, 0x30"], 0)


def test_function_pointers_are_refused_in_v0(tmp_path: Path) -> None:
    objects = compile_objects(tmp_path, FUNCTION_POINTERS)
    with pytest.raises(sbflink.LinkError, match=r"SBPFv0.*--sbpf-version 3|--sbpf-version 3"):
        sbflink.link(objects, sbpf_version=0)
    # callx through a register that no relocation set (no address taken): refused in v0, linked in v3
    code = "u64 entrypoint(const unsigned char *i) { return ((u64 (*)(u64))(*(const u64 *)(i + 8)))(i[0]); }"
    objects = compile_objects(tmp_path, {"indirect": code})
    with pytest.raises(
        sbflink.LinkError, match=r"\.text\+0x[0-9a-f]+ \(in entrypoint\): callx .* cannot run in SBPFv0"
    ):
        sbflink.link(objects, sbpf_version=0)
    check_layout(sbflink.link(objects, sbpf_version=3))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("int counter = 5; u64 entrypoint(const unsigned char *i) { counter += i[0]; return counter; }",
         r"writable section \.data \(4 bytes: counter\): SBPF programs have no mutable globals"),
        ("static u64 scratch[4]; u64 entrypoint(const unsigned char *i) { scratch[i[0] & 3] = 1; return scratch[1]; }",
         r"writable section \.bss"),
        ("u64 start(const unsigned char *i) { return i[0]; }", "no global function named `entrypoint`"),
        ("void *memcpy(void *, const void *, unsigned long);"
         "u64 entrypoint(unsigned char *i) { memcpy(i, i + 8, i[0]); return 0; }",
         "call to undefined function memcpy, which is not a Solana syscall"),
        ("u64 entrypoint(const unsigned char *i) { void (*volatile f)(const char *, u64) = sol_log_;"
         " f((const char *)i, 1); return 0; }",
         "taking the address of syscall sol_log_ is not supported"),
        ("extern const char elsewhere[]; static const char *const p[] = {elsewhere, \"x\"};"
         "u64 entrypoint(const unsigned char *i) { return p[i[0] & 1][0]; }",
         "pointer to elsewhere in read-only data: only pointers to read-only data and functions are supported"),
        ("extern const char elsewhere[]; u64 entrypoint(const unsigned char *i) { return elsewhere[i[0]]; }",
         r"\.text\+0x[0-9a-f]+ of main\.o: address of undefined data symbol elsewhere"),
    ],
)  # fmt: skip
def test_refusals(tmp_path: Path, code: str, message: str) -> None:
    objects = compile_objects(tmp_path, {"main": code})
    with pytest.raises(sbflink.LinkError, match=message):
        sbflink.link(objects, sbpf_version=3)


def test_broken_calls_are_refused(tmp_path: Path) -> None:
    """Calls no runtime could take, patched into an object: refused with their place, not left to the loader."""
    [(name, data)] = compile_objects(
        tmp_path,
        {
            "main": """
                static __attribute__((noinline)) u64 f(u64 x) { return x * 3; }
                u64 entrypoint(const unsigned char *i) { return f(i[0]) + 1; }"""
        },
    )
    import io

    from elftools.elf.elffile import ELFFile

    text = ELFFile(io.BytesIO(data)).get_section_by_name(".text")
    start = text["sh_offset"]
    code = data[start : start + text["sh_size"]]
    # the call to the static f: clang resolved it already (src 1, no relocation)
    at = next(pc * 8 for pc in range(len(code) // 8) if code[pc * 8] == OP_CALL)

    def patched(regs: int, imm: int) -> bytes:
        out = bytearray(data)
        out[start + at + 1] = regs
        struct.pack_into("<i", out, start + at + 4, imm)
        return bytes(out)

    for regs, imm, message in [
        (0x10, -1, r"\(in entrypoint\): call to itself \(call -1\)"),
        (0x10, 1000, r"\(in entrypoint\): call to instruction \d+, which is not one of \.text"),
        (0x00, 12345, r"call to syscall hash 0x00003039, not a Solana syscall"),
        (0x20, 1, r"call with src 2, neither a syscall \(0\) nor a function \(1\)"),
    ]:
        with pytest.raises(sbflink.LinkError, match=message):
            sbflink.link([(name, patched(regs, imm))], sbpf_version=3)
    with pytest.raises(sbflink.LinkError, match="SBPF version 2 is not supported: use 0 or 3"):
        sbflink.link([(name, data)], sbpf_version=2)


def test_same_objects_give_the_same_bytes(tmp_path: Path) -> None:
    objects = compile_objects(tmp_path, FUNCTION_POINTERS)
    assert sbflink.link(objects, sbpf_version=3) == sbflink.link(list(objects), sbpf_version=3)


def test_command_line_writes_v3(tmp_path: Path) -> None:
    objects = compile_objects(tmp_path, {"main": "u64 entrypoint(const unsigned char *i) { return i[0]; }"})
    (tmp_path / "main.o").write_bytes(objects[0][1])
    out = tmp_path / "out.so"
    assert sbflink.main(["--sbpf-version", "3", "-o", str(out), str(tmp_path / "main.o")]) == 0
    assert out.read_bytes() == sbflink.link(objects, sbpf_version=3)
    check_layout(out.read_bytes())
    with pytest.raises(SystemExit):
        sbflink.main(["--sbpf-version", "2", "-o", str(out), str(tmp_path / "main.o")])


def test_committed_fixtures_are_v3_and_v0() -> None:
    """fixtures/perps.so is the deployment target (SBPFv3); fixtures/perps-v0.so the build for older runtimes."""
    v3 = (ROOT / "fixtures" / "perps.so").read_bytes()
    v0 = (ROOT / "fixtures" / "perps-v0.so").read_bytes()
    check_layout(v3)
    assert sbpf_version(v0) == 0
    check_program_bytes(v0)
    assert struct.unpack_from("<I", v0, 48)[0] == 0
    # the same code: the two builds differ only in where things are (immediates) and v3's call src
    import io

    from elftools.elf.elffile import ELFFile

    text = ELFFile(io.BytesIO(v0)).get_section_by_name(".text")
    v0_insns = decode(v0[text["sh_offset"] : text["sh_offset"] + text["sh_size"]])
    assert [op for _, op, _, _ in v0_insns] == [op for _, op, _, _ in Layout(v3).insns()]


def test_committed_v3_fixture_runs() -> None:
    """perps.so loads on a v3 runtime and runs its entrypoint: an unknown instruction is the program's own error."""
    logs, code = execute((ROOT / "fixtures" / "perps.so").read_bytes(), b"\xff" * 8)
    assert code == 6000, logs  # UnknownInstruction, from the program's dispatcher
    assert any("UnknownInstruction" in line for line in logs), logs
