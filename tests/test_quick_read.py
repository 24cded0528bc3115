"""Where short reads run: on SQLite on the event loop, on PostgreSQL in the threadpool.

``GET /api/calls`` on SQLite lost two thirds of its throughput to thread hand-overs (issue
17); on a server database the same read waits on the network and must not stall the loop.
The page itself is checked on both databases by tests/test_calls_api.py.
"""

from __future__ import annotations

import asyncio
import threading

from earwitness.api.deps import quick_read
from earwitness.runtime import Runtime


def test_sqlite_reads_run_on_the_loop_server_reads_in_the_threadpool(runtime: Runtime) -> None:
    async def where() -> tuple[int, int]:
        return threading.get_ident(), await quick_read(runtime, threading.get_ident)

    loop, ran = asyncio.run(where())
    assert (ran == loop) is runtime.db.is_sqlite
