"""The embedded runtime: the LiteSVM that solders ships, its feature set, and the program build it takes.

Two generations of ``solders.litesvm`` are in use, one per dependency lane:

* solders >= 0.28 (the default lane; 0.29 is agave 4.1): ``with_feature_set``,
  ``mainnet_feature_set()``, ``add_program_with_loader``, and SBPFv3.  perpkit
  starts it with the **mainnet** feature set, as a user's program meets it on
  mainnet today, or with every feature (``features="all"``), which includes
  SIMD-0500 (no deployment of SBPF v0-v2) as ``solana-test-validator`` has it,
  except SIMD-0460, which this LiteSVM cannot run programs with.
* solders 0.26 (the anchorpy lane; agave 2.2): ``with_builtins(feature_set)``
  and SBPF v0-v2 only.  It has no mainnet feature set; ``"mainnet"`` there is
  every feature it knows minus the reverted SIMD-0167 deploy gate, which is
  also what ``"all"`` gives.

Programs are installed under the upgradeable loader (BPFLoaderUpgradeab1e),
with a program account and a program-data account without upgrade authority,
as ``solana-test-validator --upgradeable-program ID FILE none`` does.

:func:`embedded_runtime` says which generation is installed and which build
of the perps program (``fixtures/perps.so``, SBPFv3, or ``perps-v0.so``) it
runs.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal, get_args

from solders.account import Account
from solders.litesvm import FeatureSet, LiteSVM
from solders.pubkey import Pubkey

from perpkit.errors import InvalidInput, InvalidProgramFile
from perpkit.program_file import check_program_bytes, read_program_file
from perpkit.resources import program_path

Features = Literal["mainnet", "all"]
"""Which feature set the embedded runtime starts with."""
FEATURE_CHOICES: tuple[str, ...] = get_args(Features)

SLOT_MS = 400
"""Slot length of the in-process chains (embedded LiteSVM, localnet), in milliseconds, as on a cluster."""

LOADER_V3 = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
"""The upgradeable BPF loader."""

SIMD_0500 = Pubkey.from_string("B8JJXCy5amZyWG9r7EnUYLwzXSXTxG7GZ1qZ1qggo83g")
"""Feature gate of SIMD-0500: the loaders refuse to deploy SBPF v0, v1 and v2 programs."""

DISABLE_NEW_LOADER_V3_DEPLOYMENTS = Pubkey.from_string("EmhbpdVtZ2hWRGFWBDjn2i3SJD8Z36z4mpMcZJEnebnP")
"""SIMD-0167 gate that makes the upgradeable loader refuse ``DeployWithMaxDataLen``.

solders 0.26's LiteSVM knows it and turns it on with every other feature, but
it was reverted in agave (PR 5300) and is active on no cluster; perpkit keeps
it off so that ``solana program deploy``'s flow works as on devnet.  solders
0.29 no longer knows it."""

SIMD_0460 = Pubkey.from_string("7VgiehxNxu53KdxgLspGQY8myE6f7UokaWa4jsGcaSz")
"""Feature gate of SIMD-0460, virtual address space adjustments (pending on every cluster).

In solders 0.29's LiteSVM, turning it on makes every SBF program fail before
its first instruction ("Failed to create SBF VM: Invalid memory region at
index 4"), SPL Token included; ``features="all"`` therefore leaves it off
(``tests/test_runtime.py`` checks that this is still so)."""

BROKEN_IN_LITESVM = (SIMD_0460,)
"""Features ``"all"`` leaves off because the embedded LiteSVM cannot run programs with them."""

_PROGRAM_STATE = 2  # UpgradeableLoaderState::Program { programdata_address }
_PROGRAMDATA_STATE = 3  # UpgradeableLoaderState::ProgramData { slot, upgrade_authority_address }
PROGRAMDATA_METADATA_SIZE = 45
"""Bytes before the ELF in a program-data account: tag (4), slot (8), Option<authority> (1 + 32)."""


def _solders_version() -> str:
    try:
        return version("solders")
    except PackageNotFoundError:  # a source checkout of solders
        return "unknown"


@dataclass(frozen=True)
class EmbeddedRuntime:
    """What the installed ``solders.litesvm`` can do."""

    solders_version: str
    feature_set_api: bool
    """``with_feature_set`` and ``mainnet_feature_set()`` exist (solders >= 0.28)."""

    @property
    def sbpf_v3(self) -> bool:
        """The runtime loads SBPFv3 programs (agave >= 3; solders >= 0.28)."""
        return self.feature_set_api

    @property
    def sbpf_version(self) -> int:
        """The SBPF version of the perps build perpkit loads here."""
        return 3 if self.sbpf_v3 else 0

    def program_path(self) -> Path:
        """The perps build this runtime takes: ``perps.so`` (SBPFv3) or ``perps-v0.so``."""
        return program_path(self.sbpf_version)

    def describe(self, features: Features = "mainnet") -> str:
        """One line for the user: the runtime, its features and the perps build it runs."""
        if self.feature_set_api:
            feature_text = (
                "mainnet feature set" if features == "mainnet" else "all features but SIMD-0460 (SIMD-0500 on)"
            )
        else:
            feature_text = "all features it knows (solders < 0.28 has no mainnet feature set)"
        return (
            f"LiteSVM of solders {self.solders_version}, {feature_text}; "
            f"perps build {self.program_path().name} (SBPFv{self.sbpf_version})"
        )


@cache
def embedded_runtime() -> EmbeddedRuntime:
    """The installed LiteSVM generation (see the module docstring)."""
    return EmbeddedRuntime(_solders_version(), hasattr(LiteSVM, "with_feature_set"))


@cache
def litesvm_charges_priority_fee() -> bool:
    """Whether the installed LiteSVM takes the priority fee itself (0.29 does; 0.26 takes only signatures).

    Measured once on a scratch runtime rather than assumed from the version,
    so the localnet never charges it twice nor not at all.
    """
    from solders.keypair import Keypair
    from solders.message import Message
    from solders.transaction import Transaction

    from perpkit.compute_budget import set_compute_unit_limit, set_compute_unit_price

    svm = new_litesvm()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    before = svm.get_balance(payer.pubkey()) or 0
    ixs = [set_compute_unit_limit(1_000), set_compute_unit_price(1_000_000)]  # a priority fee of 1,000 lamports
    svm.send_transaction(Transaction([payer], Message(ixs, payer.pubkey()), svm.latest_blockhash()))
    return before - (svm.get_balance(payer.pubkey()) or 0) > 5_000


def _check_features(features: str) -> None:
    if features not in FEATURE_CHOICES:
        raise InvalidInput(f"features must be one of {', '.join(FEATURE_CHOICES)}, not {features!r}")


def feature_set(
    features: Features = "mainnet", *, activate: Sequence[Pubkey] = (), deactivate: Sequence[Pubkey] = ()
) -> FeatureSet:
    """The feature set ``features`` names, with ``activate``/``deactivate`` applied on top."""
    _check_features(features)
    if features == "mainnet" and embedded_runtime().feature_set_api:
        chosen: FeatureSet = LiteSVM.mainnet_feature_set()  # type: ignore[attr-defined,unused-ignore]
    else:
        chosen = FeatureSet.all_enabled()
    off = [*deactivate]
    if features == "all":
        off.extend(f for f in BROKEN_IN_LITESVM if f not in activate)
    if DISABLE_NEW_LOADER_V3_DEPLOYMENTS in chosen.active and DISABLE_NEW_LOADER_V3_DEPLOYMENTS not in activate:
        off.append(DISABLE_NEW_LOADER_V3_DEPLOYMENTS)
    # solders 0.26's FeatureSet has no activate/deactivate: its ``active``
    # (id -> slot) and ``inactive`` (set) are replaced whole there.
    active, inactive = chosen.active, chosen.inactive
    for feature in activate:
        active[feature] = 0
        inactive.discard(feature)
    for feature in off:
        active.pop(feature, None)
        inactive.add(feature)
    chosen.active, chosen.inactive = active, inactive
    return chosen


def new_litesvm(
    features: Features = "mainnet", *, activate: Sequence[Pubkey] = (), deactivate: Sequence[Pubkey] = ()
) -> LiteSVM:
    """A LiteSVM with the builtins, sysvars, SPL programs and the chosen feature set."""
    chosen = feature_set(features, activate=activate, deactivate=deactivate)
    svm = LiteSVM()
    if embedded_runtime().feature_set_api:
        svm.with_feature_set(chosen)  # type: ignore[attr-defined,unused-ignore]
    else:  # solders 0.26: the feature set comes with the builtins
        svm.with_builtins(chosen)  # type: ignore[call-arg,unused-ignore]
    return svm


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (Rust panic messages)."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def programdata_address(program_id: Pubkey) -> Pubkey:
    """The program-data account of an upgradeable program."""
    return Pubkey.find_program_address([bytes(program_id)], LOADER_V3)[0]


def install_program(svm: LiteSVM, program_id: Pubkey, program: Path | str | bytes) -> None:
    """Install a program under the upgradeable loader, with clear errors instead of a Rust panic.

    ``program`` is a file or its bytes.  The file is checked against the
    loader's ELF rules first; if the runtime's loader still refuses it (both
    solders generations panic), that becomes :class:`InvalidProgramFile`.
    The accounts are those of ``solana-test-validator --upgradeable-program
    ID FILE none``: the program account, and the program-data account at slot
    0 with no upgrade authority.
    """
    if isinstance(program, bytes):
        path: Path | str = "<program bytes>"
        data = program
        check_program_bytes(data, path)
    else:
        path = program
        data = read_program_file(program)
    if embedded_runtime().sbpf_v3 is False and data[48] >= 3:  # e_flags
        raise InvalidProgramFile(
            path,
            f"it is SBPFv{data[48]} and the LiteSVM of solders {embedded_runtime().solders_version} runs SBPF "
            "v0-v2 only; load perps-v0.so here, or install solders >= 0.28",
        )
    panic: str | None = None
    with _captured_stderr() as output:
        try:
            _install(svm, program_id, data)
        except BaseException as exc:  # pyo3's PanicException derives from BaseException
            # solders 0.26 panics; 0.29 raises LiteSVMError with the loader's reason.
            if type(exc).__name__ not in ("PanicException", "LiteSVMError"):
                raise
            panic = str(exc)
    if panic is not None:
        reason = panic.rsplit("value: ", 1)[-1]  # "called `Result::unwrap()` on an `Err` value: X"
        raise InvalidProgramFile(
            path,
            f"the runtime's loader refused it ({reason}); the ELF structure passed perpkit's checks, "
            "so look at its relocations, symbols or instructions",
        )
    if output:
        sys.stderr.write("\n".join(output) + "\n")


def _install(svm: LiteSVM, program_id: Pubkey, data: bytes) -> None:
    if embedded_runtime().feature_set_api:
        svm.add_program_with_loader(program_id, data, LOADER_V3)  # type: ignore[attr-defined,unused-ignore]
        return
    # solders 0.26 has no add_program_with_loader: write the two accounts; the
    # program account, executable and owned by the loader, makes LiteSVM load
    # the ELF from its program-data account (which must exist first).
    programdata = programdata_address(program_id)
    body = struct.pack("<IQ", _PROGRAMDATA_STATE, 0) + bytes(33) + data  # slot 0, authority None
    rent = svm.minimum_balance_for_rent_exemption
    svm.set_account(programdata, Account(rent(len(body)), body, LOADER_V3, False, 0))
    account = struct.pack("<I", _PROGRAM_STATE) + bytes(programdata)
    svm.set_account(program_id, Account(rent(len(account)), account, LOADER_V3, True, 0))
