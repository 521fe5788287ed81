"""The README's examples run as a newcomer runs them, so the README cannot rot: pasted top to
bottom into one terminal at the repository root while `make run` serves.

- Blocks: every fenced block whose info string is `sh` or `python`, in README order. The line
  right above an opening fence may hold `<!-- readme-test: skip — why -->` (the block is not
  run: it serves forever, needs a server of yours…) or `<!-- readme-test: exit N — why -->` (the
  block must end with status N: a stream that `-max-time` ends).
- Services: `herald serve --data-dir <tmp>` of this checkout, as a subprocess on free ports.
  The README's addresses 127.0.0.1:50051/50052/50053, and those of the services' metrics
  127.0.0.1:9451/9452/9453, are replaced by those in each block's text before it runs. Always on SQLite in the temp data dir, also when the suite runs on PostgreSQL
  (`HERALD_TEST_DATABASE_URL`): the README's walkthrough is the SQLite one of `make run`.
- One bash (`set -euo pipefail`), cwd the repository root (so `.venv/bin/...` resolves), runs
  the blocks one after another with `source`: what a block sets (`TOKEN`) holds for the next
  ones, as in one terminal, and the data a block makes is there for the next. A python block
  runs in that shell as `.venv/bin/python <the block as a file>`. The environment holds
  HERALD_DATA_DIR, the three addresses and the three metrics addresses, and no other `HERALD_` variable, so `.venv/bin/herald
  token` finds the secret the services generated; PYTHONPATH names this checkout (and its gen/),
  so `.venv/bin/herald` and `.venv/bin/python` run it even where `.venv` belongs to another
  checkout (a git worktree).
- Checks: each block ends with status 0 (or its N) within DEADLINE_S; grpcurl exits non-zero on
  an RPC error, so a broken example fails. A ```text block right after a run block (only prose
  between) is its expected output: each of its lines, split at "…", must appear in the output in
  order (the pieces of a line in order within one output line); lines of "…" alone elide.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness import DEADLINE_S, eventually
from services.kit.probes import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVICES = ("segment", "campaign", "delivery")
README_ADDRS = {"segment": "127.0.0.1:50051", "campaign": "127.0.0.1:50052", "delivery": "127.0.0.1:50053"}
README_METRICS_ADDRS = {"segment": "127.0.0.1:9451", "campaign": "127.0.0.1:9452", "delivery": "127.0.0.1:9453"}
RUN_INFO = ("sh", "python")
FENCE = re.compile(r"^```(\S*)$")
MARKER = re.compile(r"^<!-- readme-test: (?:(skip)|exit (\d+)) [—-] (\S.*?) -->$")


@dataclass
class Block:
    line: int  # of the opening fence, from 1
    info: str
    text: str
    skip: str = ""  # why it is not run
    status: int = 0  # the exit status it must end with
    expected: list[str] = field(default_factory=list)  # lines of the ```text block after it

    @property
    def runs(self) -> bool:
        return self.info in RUN_INFO and not self.skip

    def __str__(self) -> str:
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        return f"README.md:{self.line} ({first[:80]})"


def parse_blocks(markdown: str) -> list[Block]:
    """The fenced blocks of `markdown`, with their markers and expected outputs."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    closed_at = -1  # the closing fence of the previous block
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end] != "```":
            end += 1
        assert end < len(lines), f"README.md:{i + 1}: a block that never closes"
        block = Block(line=i + 1, info=opening.group(1), text="\n".join(lines[i + 1:end]) + "\n")
        above = lines[i - 1] if i else ""
        if above.startswith("<!-- readme-test"):
            marker = MARKER.match(above)
            assert marker, f"README.md:{i}: a marker is `<!-- readme-test: skip — why -->` or " \
                           f"`<!-- readme-test: exit N — why -->`, not {above!r}"
            if marker.group(1):
                block.skip = marker.group(3)
            else:
                block.status = int(marker.group(2))
        previous = blocks[-1] if blocks else None
        between = lines[closed_at + 1:i]
        if block.info == "text" and previous is not None and previous.runs \
                and not any(line.startswith("#") for line in between):
            previous.expected = [line.strip() for line in block.text.splitlines() if line.strip()]
        blocks.append(block)
        closed_at = end
        i = end + 1
    return blocks


def first_missing(expected: list[str], output: str) -> str | None:
    """The first expected line not found, in order, in `output`; None when every one is."""
    out = output.splitlines()
    at = 0
    for want in expected:
        pieces = [piece.strip() for piece in want.split("…") if piece.strip()]
        if not pieces:
            continue
        while at < len(out) and not _in_order(pieces, out[at]):
            at += 1
        if at == len(out):
            return want
        at += 1
    return None


def _in_order(pieces: list[str], line: str) -> bool:
    start = 0
    for piece in pieces:
        found = line.find(piece, start)
        if found < 0:
            return False
        start = found + len(piece)
    return True


def readme_env(data_dir: Path, addrs: dict[str, str], metrics_addrs: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("HERALD_")}
    env["HERALD_DATA_DIR"] = str(data_dir)
    env.update({f"HERALD_{name.upper()}_ADDR": addr for name, addr in addrs.items()})
    env.update({f"HERALD_{name.upper()}_METRICS_ADDR": addr for name, addr in metrics_addrs.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "gen"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@asynccontextmanager
async def herald_serve(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """`herald serve` on free ports and a data dir under `tmp_path`, as `make run` serves; yields
    the environment that reaches it. Stopped with SIGTERM (its process group killed if that fails)."""
    data_dir = tmp_path / "var"
    addrs = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    metrics_addrs = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    env = readme_env(data_dir, addrs, metrics_addrs)
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        serve = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "serve", "--data-dir", str(data_dir), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=stderr, start_new_session=True)
    banner: list[str] = []

    async def read_banner() -> None:
        assert serve.stdout is not None
        while line := await serve.stdout.readline():
            banner.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_banner())
    try:
        await eventually(lambda: ("".join(banner), serve.returncode),
                         lambda seen: all(a in seen[0] for a in addrs.values()) or seen[1] is not None,
                         what="herald serve's banner naming the three addresses")
        assert serve.returncode is None, f"herald serve exited with {serve.returncode}:\n{_tail(log)}"
        yield env
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(serve.wait(), DEADLINE_S)
            except TimeoutError:
                os.killpg(serve.pid, signal.SIGKILL)
                await serve.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


class Terminal:
    """One bash, as the newcomer's terminal: blocks are sourced in it one after another, each
    followed by a line that carries its exit status."""

    def __init__(self, bash: asyncio.subprocess.Process, scripts: Path) -> None:
        self.bash = bash
        self.scripts = scripts
        self.count = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, env: dict[str, str], scripts: Path) -> AsyncIterator[Terminal]:
        scripts.mkdir()
        bash = await asyncio.create_subprocess_exec(
            "bash", "--noprofile", "--norc", cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            limit=2**24)
        terminal = cls(bash, scripts)
        try:
            terminal._send("set -euo pipefail\n")
            yield terminal
        finally:
            if bash.returncode is None:
                os.killpg(bash.pid, signal.SIGKILL)
                await bash.wait()

    def _send(self, text: str) -> None:
        assert self.bash.stdin is not None
        self.bash.stdin.write(text.encode())

    async def run(self, block: Block, text: str) -> tuple[int | None, str]:
        """Runs one block; returns its exit status (None: still running at the deadline) and output."""
        self.count += 1
        script = self.scripts / f"{self.count:02d}-line{block.line}.sh"
        if block.info == "python":
            program = script.with_suffix(".py")
            program.write_text(text)
            text = f".venv/bin/python {program}\n"
        script.write_text(text)
        done = f"readme-test-block-{self.count}-done"
        # The block's stdin is /dev/null: a command that reads stdin must not eat the next blocks.
        if block.status == 0:
            self._send(f"source {script} </dev/null\nprintf '\\n%s %s\\n' {done} 0\n")
        else:  # the block's own status, not bash's end
            self._send(f"set +e\nsource {script} </dev/null\nreadme_test_status=$?\nset -e\n"
                       f"printf '\\n%s %s\\n' {done} \"$readme_test_status\"\n")
        assert self.bash.stdout is not None
        output: list[str] = []
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                raw = await asyncio.wait_for(self.bash.stdout.readline(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                os.killpg(self.bash.pid, signal.SIGKILL)
                return None, "".join(output)
            if not raw:  # set -e ended bash: the block failed
                return await self.bash.wait(), "".join(output)
            line = raw.decode(errors="replace")
            if line.startswith(done):
                return int(line.split()[1]), "".join(output).removesuffix("\n")
            output.append(line)


def test_markers_sit_right_above_a_block():
    """A marker anywhere else would silently not apply."""
    lines = README.read_text().splitlines()
    for n, line in enumerate(lines):
        if "readme-test:" in line:
            assert n + 1 < len(lines) and FENCE.match(lines[n + 1]), \
                f"README.md:{n + 1}: a readme-test marker belongs on the line right above a block's opening fence"


async def test_the_readme_examples_run_as_written(tmp_path):
    blocks = parse_blocks(README.read_text())
    to_run = [b for b in blocks if b.runs]
    assert len(to_run) >= 10, f"only {len(to_run)} runnable blocks found: is the parser right?"
    async with herald_serve(tmp_path) as env:
        async with Terminal.open(env, tmp_path / "blocks") as terminal:
            for block in to_run:
                text = block.text
                for name, addr in README_ADDRS.items():
                    text = text.replace(addr, env[f"HERALD_{name.upper()}_ADDR"])
                for name, addr in README_METRICS_ADDRS.items():
                    text = text.replace(addr, env[f"HERALD_{name.upper()}_METRICS_ADDR"])
                status, output = await terminal.run(block, text)
                shown = "\n".join(output.splitlines()[-60:])
                assert status is not None, f"{block} did not end within {DEADLINE_S:g} s; its output:\n{shown}"
                assert status == block.status, f"{block} ended with status {status}, not {block.status}; " \
                                               f"its output:\n{shown}\nherald serve's log:\n{_tail(tmp_path / 'serve.log', 10)}"
                missing = first_missing(block.expected, output)
                assert missing is None, f"{block}: the output lacks {missing!r} (of its expected output, in " \
                                        f"order); its output:\n{shown}"
