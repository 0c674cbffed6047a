"""Where the IDL and the built program are: inside the wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path

from perpkit.errors import InvalidInput

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE.parents[1]


def _find(packaged: str, source: str) -> Path:
    inside = _PACKAGE / "_data" / packaged
    if inside.exists():
        return inside
    return _SOURCE_ROOT / source


def idl_path() -> Path:
    """``idl/perps.json``: the IDL of the perps program."""
    return _find("perps.json", "idl/perps.json")


PROGRAM_FILES = {3: "perps.so", 0: "perps-v0.so"}
"""The builds of the perps program, by SBPF version: v3 deploys everywhere
today; v0 is for runtimes that predate v3 (solders 0.26's LiteSVM)."""


def program_path(sbpf_version: int = 3) -> Path:
    """``fixtures/perps.so`` (SBPFv3, the default) or ``fixtures/perps-v0.so`` (``sbpf_version=0``).

    :func:`perpkit.runtime.embedded_runtime` knows which one the installed
    LiteSVM runs.
    """
    if sbpf_version not in PROGRAM_FILES:
        raise InvalidInput(f"there is no SBPFv{sbpf_version} build of the perps program: use 3 or 0")
    name = PROGRAM_FILES[sbpf_version]
    return _find(name, f"fixtures/{name}")
