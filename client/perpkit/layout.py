"""numpy structured dtypes built from the IDL: the program's zero-copy layouts, read without a coder.

The book's ``PositionSlot`` and ``TreeNode`` and the ``User`` account are
fixed-size ``repr(C)`` structs with explicit padding, so a packed numpy dtype
with the IDL's fields in order has exactly the program's layout (the dtype
builders check the size against the IDL).  128-bit integers become two
fields ``<name>_lo`` (u64) and ``<name>_hi`` (i64 for ``i128``, u64 for
``u128``); a public key is 32 raw bytes (``V32``); a defined struct, or an
array of them, becomes a nested structured field.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from perpkit.idl import perps_idl

_SCALARS = {"u8": "u1", "i8": "i1", "bool": "u1", "u16": "<u2", "i16": "<i2", "u32": "<u4", "i32": "<i4",
            "u64": "<u8", "i64": "<i8"}  # fmt: skip


def _element(type_name: str, where: str, ty: Any) -> Any:
    """The numpy type of one IDL type that is not 128-bit (those are split into two fields)."""
    if isinstance(ty, str) and ty in _SCALARS:
        return _SCALARS[ty]
    if ty == "pubkey":
        return "V32"
    if isinstance(ty, dict) and "defined" in ty:
        return struct_dtype(ty["defined"]["name"])
    if isinstance(ty, dict) and "array" in ty:
        elem, count = ty["array"]
        return (_element(type_name, where, elem), count)
    raise TypeError(f"{type_name}.{where}: no numpy layout for {ty!r}")


def numpy_fields(type_name: str) -> list[tuple[str, Any]]:
    """numpy fields of an IDL struct, in order; 128-bit values become ``<name>_lo`` (u64) and ``<name>_hi``."""
    out: list[tuple[str, Any]] = []
    for f in perps_idl().type_def(type_name)["type"]["fields"]:
        ty = f["type"]
        if ty in ("u128", "i128"):
            out += [(f"{f['name']}_lo", "<u8"), (f"{f['name']}_hi", "<i8" if ty == "i128" else "<u8")]
        else:
            out.append((f["name"], _element(type_name, f["name"], ty)))
    return out


@cache
def struct_dtype(type_name: str) -> np.dtype[Any]:
    """The packed dtype of IDL struct ``type_name``, checked against the IDL coder's size."""
    dtype = np.dtype(numpy_fields(type_name))
    size = perps_idl().type_coder.size(type_name)
    if dtype.itemsize != size:
        raise TypeError(f"{type_name}: numpy layout of {dtype.itemsize} bytes, the IDL says {size}")
    return dtype


@cache
def account_dtype(name: str) -> np.dtype[Any]:
    """The dtype of a whole account of IDL type ``name``: the 8-byte discriminator (as a u64), then the struct."""
    dtype = np.dtype([("discriminator", "<u8"), *numpy_fields(name)])
    size = perps_idl().account_coder.size(name)
    if dtype.itemsize != size:
        raise TypeError(f"{name}: numpy layout of {dtype.itemsize} bytes, the account is {size}")
    return dtype


def discriminator_word(name: str) -> np.uint64:
    """The account discriminator of ``name`` as the little-endian u64 that :func:`account_dtype` reads."""
    return np.uint64(int.from_bytes(perps_idl().account_discriminator(name), "little"))
