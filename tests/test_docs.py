"""Every code block of README.md and docs/*.md is run by a test.

The rules, one per fence language (any other language is a failure):

- ``python``: saved to a file and run with ``python file``, as a reader would; a block that defines
  ``test_`` functions is run with ``pytest`` instead (the harness loads by itself).  A block that talks
  to an endpoint names ``http://127.0.0.1:8899``; it is pointed at the session's localnet.  A block that
  starts with ``# the default lane`` needs SBPFv3 and skips on the anchorpy lane.
- ``toml``: starts with a ``# NAME.toml`` line.  It is written to NAME.toml in the working directory of
  every block this test runs, and loaded as perpkit loads it: ``crank*.toml`` by the bot's
  configuration reader, any other as a scenario.
- ``sh``: preceded by a ``<!-- run by FILE [FILE...] -->`` line.  ``run by tests/test_docs.py``: this
  test runs the block, line by line, against a ``perpkit localnet`` it starts (placeholders such as
  ``<MARKET>`` are filled from what the earlier lines printed or from what the test set up).  Any other
  file: it must exist, and every command of the block must appear in it (for ``perpkit``, its
  subcommand words and every ``--flag``; for ``curl``, the JSON-RPC method; otherwise every word);
  ``.ci/run`` extracts its lines from README.md by pattern, so each line must match one.
- ``text``: output, a formula or a layout; never a command, not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, require_sbpf_v3_runtime

from perpkit.localnet.process import LocalnetProcess

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "sh", "toml", "text"}
SELF = "tests/test_docs.py"
ADDRESS = r"[1-9A-HJ-NP-Za-km-z]{32,44}"
OPERATOR = {"airdrop", "oracle", "market", "deposit", "withdraw", "open", "close", "positions", "book", "crank",
            "smoke"}  # fmt: skip
"""perpkit subcommands that talk to an endpoint: an executed line gets ``--url`` of the test's localnet."""


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    marker: str | None
    """The ``<!-- ... -->`` comment on the last non-blank line before the fence, if any."""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text().split("\n")
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(.*)$", lines[i])
        if opening is None:
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        comment = re.fullmatch(r"<!--\s*(.*?)\s*-->", previous.strip())
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(page, i + 1, opening.group(1).strip(), code, comment.group(1) if comment else None))
        i = end + 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def of(lang: str, runner: str | None = None) -> list[Block]:
    chosen = [b for b in BLOCKS if b.lang == lang]
    if runner is not None:
        chosen = [b for b in chosen if runners(b) == [runner]]
    return chosen


def runners(block: Block) -> list[str]:
    match = re.fullmatch(r"run by (.+)", block.marker or "")
    return match.group(1).split() if match else []


def commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuations joined, comments dropped, split at ``&&``."""
    out: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words:
            if word == "&&":
                out.append(current)
                current = []
            else:
                current.append(word)
        if current:
            out.append(current)
    return out


def without_optional(words: list[str]) -> list[str]:
    """Drop placeholders (``<MARKET>``) and optional groups (``[--owner PUBKEY]``)."""
    kept, depth = [], 0
    for word in words:
        if word.startswith("["):
            depth += 1
        if depth == 0 and not re.fullmatch(r"<[^>]*>", word):
            kept.append(word)
        if word.endswith("]"):
            depth = max(0, depth - 1)
    return kept


def required_words(command: list[str]) -> list[str]:
    """What a test file must contain to run ``command``."""
    words = without_optional(command)
    program = Path(words[0]).name
    if program == "perpkit":
        sub = []
        for word in words[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            sub.append(word)
        return sub + [w.split("=")[0] for w in words if w.startswith("--")]
    if program == "curl":
        return re.findall(r'"method":"(\w+)"', " ".join(words))
    return [program, *words[1:]]


def contains(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# --- the rules ---------------------------------------------------------------------------------------


def test_the_pages_have_blocks() -> None:
    assert len(of("python")) >= 8 and len(of("sh")) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_every_block_is_run_by_a_test(block: Block) -> None:
    assert block.lang in LANGUAGES, f"{block.where}: a ```{block.lang} block: tag it python, sh, toml or text"
    if block.lang == "toml":
        assert re.match(r"# [\w.-]+\.toml\b", block.code), f"{block.where}: a toml block starts with '# NAME.toml'"
    if block.lang != "sh":
        return
    files = runners(block)
    assert files, f"{block.where}: a sh block needs a '<!-- run by FILE -->' line before it"
    if files == [SELF]:
        return
    texts = {}
    for name in files:
        assert (ROOT / name).is_file(), f"{block.where}: {name} does not exist"
        texts[name] = (ROOT / name).read_text()
    if files == [".ci/run"]:
        patterns = re.findall(r"grep -m1 -E '([^']+)' README.md", texts[".ci/run"])
        for line in block.code.splitlines():
            assert any(re.search(p, line) for p in patterns), f"{block.where}: .ci/run does not run {line!r}"
        return
    union = "\n".join(texts.values())
    for command in commands(block.code):
        missing = [w for w in required_words(command) if not contains(union, w)]
        assert not missing, f"{block.where}: {' '.join(files)} never runs {' '.join(command)!r}: no {missing}"


# --- python and toml ------------------------------------------------------------------------------------


def write_toml_files(directory: Path) -> None:
    for block in of("toml"):
        name = block.code.split()[1]
        (directory / name).write_text(block.code)


@pytest.mark.parametrize("block", of("toml"), ids=lambda b: b.where)
def test_toml_block_loads(block: Block, tmp_path: Path) -> None:
    write_toml_files(tmp_path)
    path = tmp_path / block.code.split()[1]
    if path.name.startswith("crank"):
        import argparse

        from perpkit.bot import config_from_args

        config_from_args(argparse.Namespace(config=path))
    else:
        from perpkit.scenario import load_scenario

        load_scenario(path)


@pytest.mark.parametrize("block", of("python"), ids=lambda b: b.where)
def test_python_block_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    code = block.code
    if code.startswith("# the default lane"):
        require_sbpf_v3_runtime()
    if "127.0.0.1:8899" in code:
        code = code.replace("http://127.0.0.1:8899", request.getfixturevalue("perps_rpc_url"))
    write_toml_files(tmp_path)
    if re.search(r"^(async )?def test_", code, re.M):
        script = tmp_path / "test_doc_block.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    else:
        script = tmp_path / "doc_block.py"
        command = [sys.executable, str(script)]
    script.write_text(code)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, (
        f"{block.where} failed:\n{code}\n--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    )


# --- shell blocks this test runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_localnet() -> Iterator[LocalnetProcess]:
    with LocalnetProcess() as net:
        yield net


class Session:
    """Runs a block's lines as a reader would, in ``directory``, against ``net``."""

    def __init__(self, directory: Path, net: LocalnetProcess) -> None:
        self.directory = directory
        self.net = net
        self.home = directory / "home"
        self.home.mkdir()
        self.env = {**os.environ, "HOME": str(self.home),
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
        self.values: dict[str, str] = {}
        self.makers: dict[str, Callable[[], str]] = {
            "MINT": self._mint, "PRICE_UPDATE": self._pyth_feed, "pubkey": self._pubkey,
        }  # fmt: skip

    def value(self, name: str) -> str:
        if name not in self.values:
            assert name in self.makers, f"nothing earlier printed a value for <{name}>"
            self.values[name] = self.makers[name]()
        return self.values[name]

    def keypair(self) -> Path:
        return self.home / ".config" / "solana" / "id.json"

    def _mint(self) -> str:
        """A quote mint with 100,000 tokens in the CLI keypair's associated token account."""
        import asyncio

        from perpkit import Client
        from perpkit.keyfile import load_keypair
        from perpkit.testing import create_mint, create_token_account, mint_to

        async def make() -> str:
            owner = load_keypair(self.keypair())
            async with await Client.connect(self.net.url, payer=owner) as client:
                mint = await create_mint(client)
                await mint_to(client, mint, await create_token_account(client, mint, owner.pubkey()), 10**11)
            return str(mint)

        return asyncio.run(make())

    def _pyth_feed(self) -> str:
        """Pyth's sponsored SOL/USD account, written as Pyth's push oracle does, at 150 USD."""
        import asyncio

        from perpkit import Client
        from perpkit.pyth import FEED_IDS, price_feed_address
        from perpkit.testing import PythFeed

        sol = FEED_IDS["SOL/USD"]

        async def make() -> str:
            async with await Client.connect(self.net.url, airdrop_lamports=10**10) as client:
                await PythFeed(client, sol, address=price_feed_address(sol)).set_price(150_000_000)
            return str(price_feed_address(sol))

        return asyncio.run(make())

    def _pubkey(self) -> str:
        from solders.keypair import Keypair

        return str(Keypair().pubkey())

    def line(self, line: str) -> list[str]:
        line = re.sub(r"<(\w+)>", lambda m: self.value(m.group(1)), line)
        line = line.replace("http://127.0.0.1:8899", self.net.url).replace("localhost:8899", self.net.url)
        words = without_optional(shlex.split(line, comments=True))
        words = [str(ROOT / w) if w.startswith("examples/") else w for w in words]
        if words[:1] == ["perpkit"] and len(words) > 1 and words[1] in OPERATOR and "--url" not in words:
            words += ["--url", self.net.url]
        return words

    def run(self, line: str) -> None:
        words = self.line(line)
        if words[:2] == ["perpkit", "localnet"]:
            self._start_and_stop([*words, "--port", "0", "--no-default-payer"])
            return
        result = subprocess.run(words, capture_output=True, text=True, timeout=300, cwd=self.directory, env=self.env)
        assert result.returncode == 0, f"{' '.join(words)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if words[0] == "curl":
            assert '"result"' in result.stdout and '"error"' not in result.stdout, result.stdout
        for name, pattern in (("ORACLE", rf"oracle\s+({ADDRESS})"), ("MARKET", rf"market\s+({ADDRESS})")):
            found = re.search(pattern, result.stdout)
            if found and name not in self.values and words[1:3] in (["oracle", "create"], ["market", "create"]):
                self.values[name] = found.group(1)

    def _start_and_stop(self, words: list[str]) -> None:
        process = subprocess.Popen(words, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=self.directory, env=self.env)  # fmt: skip
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 30
            line = ""
            while time.monotonic() < deadline and " ready at " not in line:
                line = process.stdout.readline()
                if not line:
                    break
            assert " ready at " in line, (
                f"{' '.join(words)} did not start: {process.stderr.read() if process.stderr else ''}"
            )
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.parametrize("block", of("sh", SELF), ids=lambda b: b.where)
def test_sh_block_runs(block: Block, tmp_path: Path, docs_localnet: LocalnetProcess) -> None:
    write_toml_files(tmp_path)
    session = Session(tmp_path, docs_localnet)
    for line in block.code.replace("\\\n", " ").splitlines():
        if line.strip():
            session.run(line)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Every link to a file of the repository names one that exists; none points outside it."""
    text = page.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"\w+://", target):
            continue
        path = (page.parent / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{page.name}: the link {target} leads nowhere"
    assert "SPEC.md" not in text and "../shared" not in text, f"{page.name} points outside the repository"


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_anchors_exist(page: Path) -> None:
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text()):
        linked = (page.parent / target).resolve() if target else page
        if linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name}: no heading #{anchor} in {linked.name}"
