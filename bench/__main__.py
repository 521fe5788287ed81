"""`python -m bench` (or `make bench`) runs every benchmark in turn and prints their figures.

Each benchmark is also runnable alone: `python -m bench.segment_bench`, `python -m bench.delivery_bench`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.endswith("_bench"))
    for name in names:
        print(f"== bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        sys.argv = [f"bench.{name}"]  # each benchmark parses its own options; run it with defaults
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
