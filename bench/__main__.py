"""`python -m bench` (or `make bench`) runs every benchmark in turn and prints their figures.

Each benchmark is also runnable alone: `python -m bench.segment_bench`, `python -m bench.delivery_bench`.
Every *_bench runs once with its defaults, then once with each argument set in EXTRA_RUNS
(issue 11: "A `--recipients 1000000` run is part of `make bench`").
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

# Runs beyond each benchmark's defaults: (benchmark, its arguments).
EXTRA_RUNS = [
    ("delivery_bench", ["--recipients", "1000000", "--metrics", "on"]),  # metrics as deployed; their cost: the default run
]


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.endswith("_bench"))
    runs = [(name, []) for name in names] + EXTRA_RUNS
    for name, arguments in runs:
        print(f"== bench.{name} {' '.join(arguments)}".rstrip(), flush=True)
        module = importlib.import_module(f"bench.{name}")
        sys.argv = [f"bench.{name}", *arguments]  # each benchmark parses its own options
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
