"""`herald demo` on a terminal draws the campaign's live progress bar up to 100 % (read through a
pseudo-terminal) and ends with a completed campaign; run again on the same services it makes
fresh ids and completes again. And `herald --help` shows every command group."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

from harness import DEADLINE_S, REPO, cli_env, run_herald, start_herald

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DEMO_S = 2 * DEADLINE_S  # 2,000 users imported and sent to, on a loaded machine


async def on_a_terminal(system, *args: str) -> tuple[int, str, str]:
    """Runs `herald ARGS` with stdout on a pseudo-terminal 120 columns wide, as in a shell;
    returns its exit status, what it drew (escape sequences removed) and its stderr."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = cli_env(system, TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = await start_herald(system, *args, env=env, stdout=child)
    os.close(child)
    drawn: list[bytes] = []

    def read() -> None:  # until the child's end of the terminal closes (EIO)
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            drawn.append(chunk)

    reading = asyncio.create_task(asyncio.to_thread(read))
    try:
        err = await asyncio.wait_for(process.stderr.read(), DEMO_S)
        await asyncio.wait_for(process.wait(), DEADLINE_S)
        await asyncio.wait_for(reading, DEADLINE_S)
    except TimeoutError:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await reading
        raise AssertionError(f"herald {' '.join(args)} still running; drew {b''.join(drawn)[-2000:]!r}") from None
    finally:
        os.close(main)
    return process.returncode, ANSI.sub("", b"".join(drawn).decode(errors="replace")), err.decode()


async def test_demo_draws_its_bar_to_100_percent_and_runs_again(system, herald):
    code, drawn, err = await on_a_terminal(system, "demo")
    assert code == 0, (drawn[-2000:], err)
    frames = [frame.strip() for frame in re.split(r"[\r\n]+", drawn) if frame.strip()]
    bars = [frame for frame in frames if "━" in frame and "sent" in frame]
    assert bars, frames
    assert any(re.search(r"\bin_progress\b", bar) for bar in bars) or len(bars) > 1, bars
    final = bars[-1]
    assert re.search(r"\bcompleted ━+ 100\.0% sent 2,000  skipped 0  failed 0  of 2,000\b", final), final
    under = max(i for i, frame in enumerate(frames) if frame in bars) + 1  # the last frame, as a pipe sees it
    assert frames[under] == (
        "completed   100.0%  sent 2000  skipped 0  failed 0  of 2000  channels created 2000  read 0")
    first_id = re.search(r"Herald demo (demo-[0-9a-f]{6}):", drawn).group(1)
    assert (await herald.get_campaign(first_id)).stats.stats_messages_sent == 2000

    # Again on the same services: the users upserted again, a segment and a campaign of its own.
    again = await run_herald(system, "demo", timeout_s=DEMO_S)
    assert again.code == 0, again
    second_id = re.search(r"Herald demo (demo-[0-9a-f]{6}):", again.out).group(1)
    assert second_id != first_id
    assert "1/4 imported 2,001 users" in again.out
    assert [line for line in again.out.splitlines() if line.startswith("completed ")] == [
        "completed   100.0%  sent 2000  skipped 0  failed 0  of 2000  channels created 0  read 0"]  # channels exist
    campaigns = {c["id"]: c for c in (await run_herald(system, "campaigns", "list", "--json")).json()}
    assert {campaigns[i]["status"] for i in (first_id, second_id)} == {"CAMPAIGN_STATUS_COMPLETED"}


async def test_help_shows_every_command_and_a_usage_mistake_exits_2(system):
    groups = {"users": ["import", "list", "get"],
              "segments": ["create", "get", "list", "add-targets", "remove-targets", "targets", "delete"],
              "campaigns": ["create", "get", "list", "start", "stop", "delete", "watch"],
              "events": ["tail"], "dead-letters": ["list", "replay"]}
    helps = await asyncio.gather(run_herald(system, "--help"), *(run_herald(system, g, "--help") for g in groups))
    top, *rest = helps
    assert top.code == 0
    for command in [*groups, "demo", "watch", "serve", "token", "migrate"]:
        assert re.search(rf"│ {command} ", top.out), (command, top.out)
    for (group, commands), done in zip(groups.items(), rest):
        assert done.code == 0 and all(re.search(rf"│ {c} ", done.out) for c in commands), (group, done.out)
    watch = await run_herald(system, "campaigns", "watch", "--help")
    assert "Exit status: 0 completed, 3 stopped, 1 a call failed, 2 a usage mistake." in watch.out

    # The console script's function, as pyproject.toml names it, and `python -m services.cli`.
    script = subprocess.run([sys.executable, "-c", "import sys; from services.cli.__main__ import main; "
                             "sys.exit(main(['frobnicate']))"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert script.returncode == 2 and "No such command 'frobnicate'" in script.stderr
    bare = await run_herald(system)
    assert bare.code == 2 and "Usage: herald" in bare.out + bare.err
