"""anchorpy's ``Program`` for the perps IDL: the ``perpkit[anchorpy]`` lane.

perpkit's own coders (``perpkit.coder``) need no anchorpy; this module is for
projects that already drive their programs through anchorpy and want the
perps program the same way::

    from anchorpy import Provider, Wallet
    from solana.rpc.async_api import AsyncClient
    from perpkit.anchor import perps_program

    program = perps_program(Provider(AsyncClient(url), Wallet(payer)))
    await program.methods["update_funding"].accounts({"market": market, "oracle": oracle}).rpc()
    market_account = await program.account["Market"].fetch(market)

anchorpy3 pins ``construct-typing<0.6``, which holds ``solana`` at 0.36.6 and
``solders`` below 0.27, so this lane runs the SBPFv0 build of the program
(solders 0.26's LiteSVM cannot load SBPFv3).  Install it in its own
environment: ``pip install 'perpkit[anchorpy]'``.
"""

from __future__ import annotations

import json
from typing import Any

from solders.pubkey import Pubkey

from perpkit.errors import PerpkitError
from perpkit.idl import PROGRAM_ID, perps_idl

try:
    from anchorpy.idl_adapter import Idl
    from anchorpy.program.core import Program
    from anchorpy.provider import Provider
except ImportError as exc:  # pragma: no cover - depends on the lane
    raise PerpkitError(
        "perpkit.anchor needs anchorpy: install the anchorpy lane in its own environment "
        "(pip install 'perpkit[anchorpy]'); it holds solana at 0.36.6 and solders at 0.26"
    ) from exc


def perps_idl_for_anchorpy() -> Any:
    """The perps IDL as anchorpy parses it."""
    return Idl.from_json(json.dumps(perps_idl().raw))


def perps_program(provider: Provider, program_id: Pubkey = PROGRAM_ID) -> Program:
    """anchorpy's ``Program`` for the perps program at ``program_id`` (default: the IDL's localnet id)."""
    return Program(perps_idl_for_anchorpy(), program_id, provider)
