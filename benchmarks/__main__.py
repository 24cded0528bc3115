"""Run every benchmark (or those named): ``python -m benchmarks [name ...] [--json PATH]``.

Each module measures its own baseline in the same process and returns lines of the form
``name: ours X, baseline Y, ratio Z``; see benchmarks/README.md for the latest figures.
``--json PATH`` goes to the benchmarks whose ``run()`` takes ``json_path`` (``speech``), which
write all their numbers there.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time

MODULES = [
    "bench_ami_parse",
    "bench_ami_track",
    "bench_track",
    "bench_transcription",
    "bench_qa",
    "bench_search",
    "bench_speech",
    "bench_custody",
    "bench_diarization",
    "bench_web",
    "bench_scale",
    "bench_sla",
    "bench_api",
    "bench_ingest",
]


def _options(argv: list[str]) -> tuple[list[str], str | None]:
    """Benchmark names, and the path given with ``--json`` (if any)."""
    names, json_path = [], None
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            json_path = next(args, None)
            if json_path is None:
                raise SystemExit("--json needs a path")
        elif arg.startswith("--json="):
            json_path = arg.split("=", 1)[1]
        else:
            names.append(arg)
    return names, json_path


def main(argv: list[str]) -> int:
    names, json_path = _options(argv)
    wanted = [m for m in MODULES if not names or any(a in m for a in names)]
    failed = 0
    for name in wanted:
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            takes_json = "json_path" in inspect.signature(module.run).parameters
            lines = module.run(json_path=json_path) if takes_json else module.run()
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
