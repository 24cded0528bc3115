"""Run every benchmark (or those named): ``python -m benchmarks [name ...]``.

Each module measures its own baseline in the same process and returns lines of the form
``name: ours X, baseline Y, ratio Z``; see benchmarks/README.md for the latest figures.
"""

from __future__ import annotations

import importlib
import sys
import time

MODULES = [
    "bench_ami_parse",
    "bench_ami_track",
    "bench_track",
    "bench_transcription",
    "bench_qa",
    "bench_search",
]


def main(argv: list[str]) -> int:
    wanted = [m for m in MODULES if not argv or any(a in m for a in argv)]
    failed = 0
    for name in wanted:
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            lines = module.run()
        except Exception as exc:  # report and go on: one broken benchmark hides no other
            print(f"{name}: FAILED {type(exc).__name__}: {exc}")
            failed += 1
            continue
        for line in lines:
            print(line)
        print(f"  ({name} took {time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
