"""The IDL is the one source of truth: generated files are current and layouts agree."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import idlgen
import pytest

from perpkit import program_errors
from perpkit.accounts import BookHeader, Market, MarketParams, Oracle
from perpkit.idl import perps_idl

IDL = json.loads(idlgen.IDL_PATH.read_text())


def test_generated_files_are_current() -> None:
    for path, text in idlgen.generate().items():
        assert path.read_text() == text, f"{path} is stale: run python program/tools/idlgen.py"


def test_check_mode_reports_a_stale_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "perps_idl.h"
    stale.write_text(
        idlgen.HEADER_PATH.read_text().replace("PERPS_ERR_UNAUTHORIZED = 6015", "PERPS_ERR_UNAUTHORIZED = 1")
    )
    monkeypatch.setattr(idlgen, "HEADER_PATH", stale)
    monkeypatch.setattr(idlgen, "ERRORS_PATH", tmp_path / "program_errors.py")
    (tmp_path / "program_errors.py").write_text(idlgen.generate()[tmp_path / "program_errors.py"])
    assert idlgen.main(["--check"]) == 1
    assert idlgen.main([]) == 0
    assert idlgen.main(["--check"]) == 0


def test_standard_anchor_discriminators() -> None:
    for ix in IDL["instructions"]:
        assert bytes(ix["discriminator"]) == hashlib.sha256(f"global:{ix['name']}".encode()).digest()[:8]
    for acc in IDL["accounts"]:
        assert bytes(acc["discriminator"]) == hashlib.sha256(f"account:{acc['name']}".encode()).digest()[:8]


def test_errors_start_at_6000_and_have_classes() -> None:
    codes = [e["code"] for e in IDL["errors"]]
    assert codes == list(range(6000, 6000 + len(codes)))
    for e in IDL["errors"]:
        cls = getattr(program_errors, e["name"])
        assert (cls.code, cls.error_name, cls.error_msg) == (e["code"], e["name"], e["msg"])


def test_anchorpy_loads_the_idl() -> None:
    anchorpy = pytest.importorskip("anchorpy", reason="the anchorpy lane only: pip install -e '.[anchorpy,test]'")
    idl = anchorpy.Idl.from_json(idlgen.IDL_PATH.read_text())
    assert [i.name for i in idl.instructions] == [i["name"] for i in IDL["instructions"]]
    assert str(perps_idl().program_id) == IDL["address"]


def test_generator_refuses_implicit_padding() -> None:
    bad = copy.deepcopy(IDL)
    oracle = next(t for t in bad["types"] if t["name"] == "Oracle")
    oracle["type"]["fields"].insert(1, {"name": "flag", "type": "u8"})
    with pytest.raises(idlgen.IdlError, match=r"Oracle\.price at offset 33 needs 8-byte alignment"):
        idlgen.Generator(bad).header()
    bad = copy.deepcopy(IDL)
    bad["instructions"][0]["discriminator"] = [0] * 8
    with pytest.raises(idlgen.IdlError, match="discriminator is not sha256"):
        idlgen.Generator(bad).header()
    bad = copy.deepcopy(IDL)
    next(t for t in bad["types"] if t["name"] == "Book")["type"]["fields"].append({"name": "v", "type": "bytes"})
    with pytest.raises(idlgen.IdlError, match="has no fixed C layout"):
        idlgen.Generator(bad).header()


@pytest.mark.parametrize(("cls", "name"), [(Market, "Market"), (Oracle, "Oracle"), (BookHeader, "Book")])
def test_sdk_dataclasses_follow_the_idl(cls: type, name: str) -> None:
    idl_fields = [f["name"] for f in perps_idl().type_def(name)["type"]["fields"] if f["name"] != "padding"]
    assert [f.name for f in dataclasses.fields(cls) if f.name != "address"] == idl_fields


def test_market_params_follow_the_idl() -> None:
    idl_fields = [f["name"] for f in perps_idl().type_def("MarketParams")["type"]["fields"]]
    assert [f.name for f in dataclasses.fields(MarketParams)] == [n for n in idl_fields if n != "padding"]
    assert list(MarketParams().to_idl()) == [*[n for n in idl_fields if n != "padding"], "padding"]
