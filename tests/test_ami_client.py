"""AmiClient against a real Asterisk 22 (tests/pbx): login, correlation, lists, reconnects.

This module gets its own Asterisk (``asterisk_module``) because it restarts, freezes and cuts
it.  Every wait is bounded and event driven (asyncio futures, or polling a condition with a
deadline); the only plain sleep is the idle test, where the silence itself is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from earwitness.telephony.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConnectionError,
    AmiMessage,
    AmiState,
)
from tests.pbx.asterisk import Asterisk

pytestmark = pytest.mark.asterisk
T = TypeVar("T")


pytest_plugins = ["tests.pbx.fixtures"]


@pytest.fixture(scope="module")
def pbx(asterisk_module: Asterisk) -> Iterator[Asterisk]:
    """This module's own Asterisk (it gets restarted, stopped and frozen here)."""
    yield asterisk_module
    if asterisk_module.proc is not None:  # a test that failed while Asterisk was frozen
        os.kill(asterisk_module.proc.pid, signal.SIGCONT)


def arun(coro: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
    """Run one test coroutine with a hard bound, so a hang fails instead of blocking CI."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def client_for(pbx: Asterisk, **options: Any) -> AmiClient:
    options.setdefault("connect_timeout", 5.0)
    options.setdefault("action_timeout", 5.0)
    options.setdefault("backoff", (0.05, 0.5))
    secret = options.pop("secret", pbx.ami_secret)
    return AmiClient(pbx.ami_host, pbx.ami_port, pbx.ami_user, secret, **options)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Hook:
    """on_connected hook that records each call and lets a test await the n-th one."""

    def __init__(self, body: Callable[[AmiClient], Awaitable[None]] | None = None) -> None:
        self.calls = 0
        self.body = body
        self.channel_counts: list[int] = []

    async def __call__(self, client: AmiClient) -> None:
        channels = await client.send_list("CoreShowChannels")  # what the tracker resyncs with
        self.channel_counts.append(len(channels))
        if self.body is not None:
            await self.body(client)
        self.calls += 1


def test_login_banner_and_state(pbx: Asterisk) -> None:
    async def scenario() -> None:
        hook = Hook()
        async with client_for(pbx, on_connected=hook) as client:
            await client.wait_connected(20)
            assert client.state is AmiState.CONNECTED
            assert client.version is not None and re.fullmatch(r"\d+\.\d+\.\d+", client.version)
            assert hook.calls == 1 and client.counters.logins == 1
            assert (await client.send("Ping")).get("Ping") == "Pong"
            health = client.health()
            assert health["state"] == "connected" and health["last_error"] is None
        assert client.state is AmiState.DISCONNECTED
        with pytest.raises(AmiConnectionError):
            await client.send("Ping")

    arun(scenario())


def test_bad_credentials_raise_auth_error_quickly(pbx: Asterisk) -> None:
    async def scenario() -> None:
        async with client_for(pbx, secret="not-the-secret") as client:
            started = time.monotonic()
            with pytest.raises(AmiAuthError):
                await client.wait_connected(20)
            assert time.monotonic() - started < 5  # Asterisk itself delays a failure by ~1 s
            assert client.state is AmiState.AUTH_FAILED
            assert isinstance(client.last_error, AmiAuthError)
            # It keeps retrying (the secret may be fixed in manager.conf) and keeps saying why.
            attempts = client.counters.connect_attempts
            await until(lambda: client.counters.connect_attempts > attempts, 10, "a retry")
            assert client.health()["state"] == "auth_failed"

    arun(scenario())


def test_concurrent_actions_are_correlated(pbx: Asterisk) -> None:
    async def scenario() -> None:
        async with client_for(pbx) as client:
            await client.wait_connected(20)
            n = 40
            await asyncio.gather(
                *(
                    client.send("Setvar", Variable=f"GLOBAL(EW_T{i})", Value=str(i))
                    for i in range(n)
                )
            )
            replies = await asyncio.gather(
                *(client.send("Getvar", Variable=f"GLOBAL(EW_T{i})") for i in range(n)),
                *(client.send("Ping") for _ in range(n)),
            )
            assert [r.get("Value") for r in replies[:n]] == [str(i) for i in range(n)]
            assert {r.get("Ping") for r in replies[n:]} == {"Pong"}
            assert len({r.action_id for r in replies}) == 2 * n
            with pytest.raises(AmiActionError) as error:
                await client.send("NoSuchActionAtAll")
            assert error.value.response.is_error

    arun(scenario())


def test_core_show_channels_and_queue_lists(pbx: Asterisk) -> None:
    async def scenario() -> None:
        async with client_for(pbx) as client:
            await client.wait_connected(20)
            queue = await client.send_list("QueueStatus", Queue="complaints")
            assert {m.name for m in queue} >= {"QueueParams", "QueueMember"}
            summary = await client.send_list("QueueSummary", Queue="complaints")
            assert [m.name for m in summary] == ["QueueSummary"]
            await client.send(
                "Originate",
                Channel="Local/queue@customer/n",
                Context="phone",
                Exten="s",
                Priority=1,
                CallerID='"Customer" <13800138000>',
                Variable=["__AGENT_DELAY=30", "__AGENT_TALK=1", "QUEUE_TIMEOUT=40"],
                Async="true",
            )
            channels: list[AmiMessage] = []

            async def ringing() -> bool:
                channels[:] = await client.send_list("CoreShowChannels")
                return len(channels) >= 2

            deadline = time.monotonic() + 20
            while not await ringing():
                assert time.monotonic() < deadline, "originated call never showed up"
            assert {m.name for m in channels} == {"CoreShowChannel"}
            assert all(m.get("Channel") and m.get("Uniqueid") for m in channels)
            for channel in channels:  # hanging up one half of a Local pair ends the other
                with contextlib.suppress(AmiActionError):
                    await client.send("Hangup", Channel=channel["Channel"])

            async def empty() -> bool:
                return not await client.send_list("CoreShowChannels")

            deadline = time.monotonic() + 20
            while not await empty():
                assert time.monotonic() < deadline, "channels never went away"

    arun(scenario())


def test_events_dispatched_in_order_to_sync_and_async_callbacks(pbx: Asterisk) -> None:
    async def scenario() -> None:
        async with client_for(pbx) as client:
            sync_seen: list[str] = []
            async_seen: list[str] = []
            done = asyncio.get_running_loop().create_future()

            def on_sync(message: AmiMessage) -> None:
                sync_seen.append(message.get("Seq") or "")

            async def on_async(message: AmiMessage) -> None:
                # A callback may itself talk to Asterisk: the reader is not blocked by it.
                await client.send("Ping")
                async_seen.append(message.get("Seq") or "")
                if len(async_seen) == 20:
                    done.set_result(None)

            def broken(message: AmiMessage) -> None:
                raise RuntimeError("callback bug")

            client.on_event(on_sync, "UserEvent")
            client.on_event(broken, "userevent")
            client.on_event(on_async, "UserEvent")
            await client.wait_connected(20)
            for seq in range(20):
                await client.send("UserEvent", UserEvent="EwTest", Seq=seq)
            await asyncio.wait_for(done, 10)
            assert sync_seen == async_seen == [str(s) for s in range(20)]
            assert client.counters.callback_errors == 20
            assert client.state is AmiState.CONNECTED

    arun(scenario())


def test_reconnect_after_connection_is_cut(pbx: Asterisk) -> None:
    async def scenario() -> None:
        hook = Hook()
        async with client_for(pbx, events="off", action_timeout=60, on_connected=hook) as client:
            await client.wait_connected(20)
            # WaitEvent blocks server-side: a pending action that the cut must fail at once.
            waiting = asyncio.ensure_future(client.send("WaitEvent", Timeout=50))
            await until(lambda: client.counters.actions >= 3, 5, "WaitEvent sent")
            started = time.monotonic()
            client.abort_connection()
            with pytest.raises(AmiConnectionError):
                await waiting
            assert time.monotonic() - started < 2
            await until(lambda: hook.calls == 2, 15, "on_connected after the cut")
            assert client.state is AmiState.CONNECTED and client.counters.logins == 2
            assert (await client.send("Ping")).get("Ping") == "Pong"

    arun(scenario())


def test_reconnect_after_asterisk_restart(pbx: Asterisk) -> None:
    async def scenario() -> None:
        hook = Hook()
        async with client_for(pbx, on_connected=hook) as client:
            await client.wait_connected(20)
            await asyncio.to_thread(pbx.restart)
            await until(lambda: hook.calls == 2, 30, "on_connected after the restart")
            assert client.counters.disconnects >= 1
            assert (await client.send("Ping")).get("Ping") == "Pong"
            await asyncio.to_thread(pbx.stop)
            await until(lambda: client.state is not AmiState.CONNECTED, 10, "the drop")
            with pytest.raises(AmiConnectionError):
                await client.send("Ping")
            await asyncio.to_thread(pbx.start)
            await until(lambda: hook.calls == 3, 30, "on_connected after stop/start")
            assert hook.channel_counts == [0, 0, 0]

    arun(scenario(), timeout=120)


def test_on_connected_runs_before_events_of_that_connection(pbx: Asterisk) -> None:
    async def scenario() -> None:
        order: list[str] = []

        async def resync(client: AmiClient) -> None:
            await client.send("UserEvent", UserEvent="DuringResync")
            await client.send_list("CoreShowChannels")  # the event has surely arrived by now
            order.append("resync done")

        def on_event(message: AmiMessage) -> None:
            if message.get("UserEvent") == "DuringResync":
                order.append("event")

        async with client_for(pbx, on_connected=Hook(resync)) as client:
            client.on_event(on_event, "UserEvent")
            await client.wait_connected(20)
            await until(lambda: len(order) == 2, 5, "the event")
            assert order == ["resync done", "event"]

    arun(scenario())


def test_ping_keeps_the_link_and_detects_a_frozen_asterisk(pbx: Asterisk) -> None:
    assert pbx.proc is not None
    pid = pbx.proc.pid

    async def scenario() -> None:
        hook = Hook()
        async with client_for(
            pbx, ping_interval=0.2, action_timeout=1.0, connect_timeout=1.0, on_connected=hook
        ) as client:
            await client.wait_connected(20)
            await until(lambda: client.counters.pings >= 5, 10, "five pings")
            assert client.counters.missed_pongs == 0 and client.counters.logins == 1
            # A frozen PBX (or a half-open TCP link after a network cut) sends nothing, not
            # even a RST: only the unanswered Ping can tell.
            os.kill(pid, signal.SIGSTOP)
            try:
                await until(lambda: client.counters.missed_pongs >= 1, 10, "a missed pong")
                await until(lambda: client.state is not AmiState.CONNECTED, 5, "the drop")
            finally:
                os.kill(pid, signal.SIGCONT)
            await until(lambda: hook.calls == 2, 20, "reconnect after the thaw")
            assert (await client.send("Ping")).get("Ping") == "Pong"

    arun(scenario())


@pytest.mark.slow
def test_survives_silence_longer_than_asterisk_amis_socket_timeout(pbx: Asterisk) -> None:
    """asterisk-ami 0.1.7 dies after 3 s without a byte; we must not (no pings, no events)."""

    async def scenario() -> None:
        async with client_for(pbx, events="off", ping_interval=3600) as client:
            await client.wait_connected(20)
            await asyncio.sleep(5)  # the silence under test, not synchronisation
            assert client.state is AmiState.CONNECTED and client.counters.disconnects == 0
            assert (await client.send("Ping")).get("Ping") == "Pong"

    arun(scenario())
