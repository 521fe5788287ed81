"""Generated requests for every RPC of the three services (tests/fuzz/strategies.py), through
real channels to the real services: every answer is a client status (INVALID_ARGUMENT,
NOT_FOUND, …) or success, never UNKNOWN, INTERNAL, UNIMPLEMENTED or a unary call's client
deadline; and at least a fifth of them get past validation to the logic behind it.

The seed is printed; HERALD_FUZZ_SEED=<seed> replays a run (hypothesis also prints, for a
failure, the blob that reproduces it with `@reproduce_failure`).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from harness import NOT_BUILT, serve_system

from .calls import OPEN, Rpc, call, every_rpc
from .domain import EXCLUSIVE, World, seed as seed_world
from .strategies import Requests

RPCS = every_rpc()
# At least 5,000 requests in all; a few more per RPC, since one whose request has no fields
# (GetPushConfig) has a single example to give.
EXAMPLES_PER_RPC = -(-5_400 // len(RPCS))
PASSED_SHARE = 0.2  # of the requests get past validation (any answer but INVALID_ARGUMENT)
ANSWERS = {grpc.StatusCode.OK.name, OPEN} | {code.name for code in (
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED)}
SHOWN_CHARS = 2_000  # of a failing request in the report
# The services, in this process, draw backoff jitter from `random` while hypothesis draws a
# request: hypothesis takes that for a strategy using `random`.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")


def _requests_of(rpc: Rpc, requests: Requests) -> st.SearchStrategy[Any]:
    one = requests.of(rpc.method.input_type)
    return st.lists(one, max_size=3) if rpc.method.client_streaming else one


def _expected(rpc: Rpc, outcome: str) -> bool:
    if rpc.name in NOT_BUILT:
        return outcome == grpc.StatusCode.UNIMPLEMENTED.name
    return outcome in ANSWERS


def _fuzz(rpc: Rpc, world: World, channels: dict[str, grpc.aio.Channel], loop: asyncio.AbstractEventLoop,
          run_seed: int, outcomes: Counter[tuple[str, str]]) -> None:
    """Runs the RPC's examples from this (worker) thread, each call on the services' loop."""
    @seed(run_seed)
    # No shrinking: it would call the services hundreds of times more, on their changed state;
    # the failing request is printed whole enough, and the seed or blob replays it.
    @settings(max_examples=EXAMPLES_PER_RPC, deadline=None, database=None, print_blob=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(_requests_of(rpc, Requests(world.realism, world.hostility, EXCLUSIVE)))
    def examples(request: Any) -> None:
        outcome = asyncio.run_coroutine_threadsafe(call(rpc, channels[rpc.server], request), loop).result()
        outcomes[(rpc.name, outcome)] += 1
        assert _expected(rpc, outcome), f"{rpc.name} → {outcome} for {_shown(request)}"

    examples()


def _shown(request: Any) -> str:
    if isinstance(request, list):
        return "[" + ", ".join(map(_shown, request)) + "]"
    return text_format.MessageToString(request, as_one_line=True)[:SHOWN_CHARS]


def _report(outcomes: Counter[tuple[str, str]]) -> tuple[int, int]:
    """Prints each RPC's answers; returns (requests, requests past validation)."""
    by_rpc: dict[str, Counter[str]] = {}
    for (name, outcome), count in outcomes.items():
        by_rpc.setdefault(name, Counter())[outcome] += count
    for name, answers in sorted(by_rpc.items()):
        print(f"{name}: {dict(answers.most_common())}")
    total = sum(outcomes.values())
    invalid = sum(count for (_, outcome), count in outcomes.items() if outcome == "INVALID_ARGUMENT")
    return total, total - invalid


# ~90 s on an idle 2-core machine; a loaded one may take three times that, past the suite's 300 s.
@pytest.mark.timeout(900)
async def test_every_rpc_answers_generated_requests_with_client_statuses(new_db_url, tmp_path):
    run_seed = int(os.environ.get("HERALD_FUZZ_SEED") or random.randrange(1 << 32))
    print(f"HERALD_FUZZ_SEED={run_seed}")
    outcomes: Counter[tuple[str, str]] = Counter()
    failures = []
    async with serve_system(new_db_url, tmp_path) as system:
        channels = {name: system.channel(name) for name in system.servers}
        world = await seed_world(channels)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        for rpc in RPCS:
            try:
                await asyncio.to_thread(_fuzz, rpc, world, channels, loop, run_seed, outcomes)
            except AssertionError as failure:
                failures.append(str(failure))
        seconds = time.perf_counter() - started
    total, passed = _report(outcomes)
    print(f"{total} requests in {seconds:.1f} s, {passed} ({passed / total:.0%}) past validation")
    assert not failures, f"HERALD_FUZZ_SEED={run_seed}:\n" + "\n".join(failures)
    assert {name for name, _ in outcomes} == {rpc.name for rpc in RPCS}
    assert total >= 5_000
    assert passed >= PASSED_SHARE * total, f"only {passed} of {total} requests got past validation"
