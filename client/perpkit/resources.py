"""Where the IDL and the built program are: inside the wheel, or in the source tree."""

from __future__ import annotations

from pathlib import Path

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


def program_path() -> Path:
    """``fixtures/perps.so``: the built program."""
    return _find("perps.so", "fixtures/perps.so")
