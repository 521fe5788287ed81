"""What the benchmarks share about the service processes they start."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable


async def stop_all(processes: Iterable[asyncio.subprocess.Process], sig: int = signal.SIGTERM) -> None:
    """Signals every process still running, waits up to 15 s for each, then kills what is left."""
    processes = list(processes)
    for process in processes:
        if process.returncode is None:
            process.send_signal(sig)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
