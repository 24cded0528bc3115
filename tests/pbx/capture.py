"""Capture raw AMI traffic of the harness scenarios into tests/data/ami/<scenario>.raw.

    .venv/bin/python -m tests.pbx.capture [--out tests/data/ami] [--only name,name]

Each scenario opens a fresh AMI connection (plain socket, Login with Events: on), drives
calls with Originate of Local/ channels, reads until every channel it saw has hung up
(plus a quiet second), and writes every byte received (banner included) to
``<scenario>.raw``.  ``scenarios.json`` holds the wall-clock and parameters of each run.
Restart scenarios hold the bytes of two connections back to back: the second one starts
with a new ``Asterisk Call Manager/`` banner line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import time
import wave
from pathlib import Path

from tests.pbx.asterisk import AMI, AMIMessage, Asterisk, build_root

ROOT_DIR = Path(__file__).resolve().parents[2]
CALLER = "13800138000"

COMPLAINT = (
    "Hello, I am calling to complain. Your rescue truck was one hour and twenty minutes late "
    "on the airport expressway, and nobody called me back."
)
REPLY = (
    "I am very sorry for the delay. I have recorded your complaint, and our team leader "
    "will call you back within ten minutes."
)


class Session:
    """One AMI connection plus bookkeeping of the channels it has seen."""

    def __init__(self, pbx: Asterisk) -> None:
        self.pbx = pbx
        self.chunks: list[bytes] = []
        self.ami = self._connect()
        self.live: set[str] = set()
        self.seen: list[AMIMessage] = []

    def _connect(self) -> AMI:
        ami = AMI(self.pbx.ami_host, self.pbx.ami_port)
        ami.login(self.pbx.ami_user, self.pbx.ami_secret, events="on")
        return ami

    def _track(self, m: AMIMessage) -> None:
        self.seen.append(m)
        ev = m.event
        if ev == "Newchannel":
            self.live.add(m["Uniqueid"])
        elif ev == "Hangup":
            self.live.discard(m["Uniqueid"])

    def pump(self, seconds: float) -> None:
        for m in self.ami.drain(seconds):
            self._track(m)
        self.ami.events.clear()

    def action(self, name: str, **fields: object) -> AMIMessage:
        r = self.ami.action(name, **fields)
        for m in self.ami.events:
            self._track(m)
        self.ami.events.clear()
        return r

    def wait(self, pred, timeout: float = 60.0) -> AMIMessage:
        for _i, m in enumerate(self.ami.events):
            self._track(m)
        backlog = list(self.ami.events)
        self.ami.events.clear()
        for m in backlog:
            if pred(m):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.ami.read_message(deadline - time.monotonic())
            if m is None:
                break
            self._track(m)
            if pred(m):
                return m
        raise TimeoutError("expected event not seen")

    def settle(self, timeout: float = 90.0, quiet: float = 1.0) -> None:
        """Read until no channel is live and nothing arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.ami.drain(quiet)
            for m in got:
                self._track(m)
            self.ami.events.clear()
            if not self.live and not got:
                return
        raise TimeoutError(f"channels still live after {timeout}s: {sorted(self.live)}")

    def reconnect(self, timeout: float = 30.0) -> None:
        """After a restart: keep the old bytes, poll until AMI answers again, log in."""
        self.chunks.append(bytes(self.ami.raw))
        with contextlib.suppress(OSError):
            self.ami.sock.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ami = self._connect()
                break
            except (OSError, TimeoutError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.live.clear()

    def read_until_closed(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.ami.read_message(deadline - time.monotonic())
            except ConnectionError:
                return
            if m is None:
                return
            self._track(m)

    def raw(self) -> bytes:
        return b"".join(self.chunks) + bytes(self.ami.raw)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ami.sock.close()


def is_event(name: str, **match: str):
    def pred(m: AMIMessage) -> bool:
        return m.event == name and all(m.get(k) == v for k, v in match.items())

    return pred


# --------------------------------------------------------------------------- scenarios


def sc_queue_answered(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_queue_call(s.ami, callerid=CALLER, agent_delay=3, agent_talk=3)
    s.wait(is_event("AgentConnect"), 20)
    s.action("QueueStatus", Queue="complaints")
    s.action("CoreShowChannels")
    s.settle()
    return {"agent_delay": 3, "agent_talk": 3}


def sc_queue_abandon(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_queue_call(s.ami, callerid=CALLER, agent_delay=60, abandon_after=4)
    s.settle()
    return {"agent_delay": 60, "abandon_after": 4, "member_timeout": pbx.member_timeout}


def sc_queue_rona(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_queue_call(
        s.ami, callerid=CALLER, agent_delay=2, agent_delays={"agent1": 60}, agent_talk=3
    )
    s.settle()
    return {
        "agent1_delay": 60,
        "others_delay": 2,
        "member_timeout": pbx.member_timeout,
        "retry": pbx.retry,
        "strategy": pbx.strategy,
    }


def sc_queue_timeout(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_queue_call(s.ami, callerid=CALLER, agent_delay=60, queue_timeout=8)
    s.settle()
    return {"agent_delay": 60, "queue_timeout": 8}


def sc_direct_answered(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_direct_call(s.ami, target="agent3", callerid=CALLER, agent_delay=4, agent_talk=3)
    s.settle()
    return {"target": "agent3", "agent_delay": 4, "agent_talk": 3}


def sc_direct_noanswer(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_direct_call(
        s.ami, target="agent3", callerid=CALLER, agent_delay=60, extra_vars={"DIAL_TIMEOUT": 6}
    )
    s.settle()
    return {"target": "agent3", "agent_delay": 60, "dial_timeout": 6}


def sc_blind_transfer(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_queue_call(
        s.ami, callerid=CALLER, agent_delay=2, agent_talk=20, extra_vars={"__AGENT_DELAY_agent3": 3}
    )
    ac = s.wait(is_event("AgentConnect"), 20)
    s.pump(3)
    r = s.action("BlindTransfer", Channel=ac["DestChannel"], Exten="agent3", Context="transfer")
    # agent3 talks 20 s by default here; hang the call up from the customer side after a while
    s.wait(is_event("DialEnd", DialStatus="ANSWER"), 20)
    s.pump(3)
    s.action("Hangup", Channel=ac["Channel"])
    s.settle()
    return {
        "transferer": ac["DestChannel"],
        "target": "agent3@transfer",
        "response": r.get("Response"),
        "message": r.get("Message"),
    }


def sc_redirect_transfer(pbx: Asterisk, s: Session) -> dict:
    pbx.originate_queue_call(
        s.ami,
        callerid=CALLER,
        agent_delay=2,
        agent_talk=20,
        extra_vars={"__AGENT_DELAY_agent3": 3, "__AGENT_TALK_agent3": 3},
    )
    ac = s.wait(is_event("AgentConnect"), 20)
    s.pump(3)
    r = s.action("Redirect", Channel=ac["Channel"], Exten="agent3", Context="transfer", Priority=1)
    s.wait(is_event("DialEnd", DialStatus="ANSWER"), 20)
    s.pump(3)
    s.action("Hangup", Channel=ac["Channel"])
    s.settle()
    return {"redirected": ac["Channel"], "target": "agent3@transfer", "response": r.get("Response")}


def sc_queue_overflow(pbx: Asterisk, s: Session) -> dict:
    """complaints rings out (everyone there takes 60 s) until its 8 s Queue() timeout; the
    dialplan moves the caller to the overflow queue, whose agent25 answers after 2 s."""
    pbx.originate_queue_call(
        s.ami,
        exten="overflow",
        callerid=CALLER,
        agent_delay=60,
        agent_talk=3,
        queue_timeout=8,
        extra_vars={"__AGENT_DELAY_agent25": 2},
    )
    s.settle()
    return {
        "first_queue": "complaints",
        "queue_timeout": 8,
        "overflow_queue": "overflow",
        "overflow_agent": "agent25",
        "overflow_delay": 2,
    }


def sc_attended_transfer(pbx: Asterisk, s: Session) -> dict:
    """agent1 answers, AMI Atxfer to agent3@transfer (consultation), agent1 hangs up: the
    transfer completes and agent3 talks with the customer."""
    pbx.originate_queue_call(
        s.ami,
        callerid=CALLER,
        agent_delay=2,
        agent_talk=30,
        queue_opts="t",
        extra_vars={"__AGENT_DELAY_agent3": 2, "__AGENT_TALK_agent3": 4},
    )
    ac = s.wait(is_event("AgentConnect"), 20)
    s.pump(2)
    # Atxfer sends the exten as DTMF: "83" is the transfer context's alias of agent3
    r = s.action("Atxfer", Channel=ac["DestChannel"], Exten="83", Context="transfer")
    s.wait(is_event("DialEnd", DialStatus="ANSWER"), 20)  # agent3 took the consultation
    s.pump(1)
    s.action("Hangup", Channel=ac["DestChannel"])  # transferer leaves: transfer completes
    s.settle()
    return {
        "transferer": ac["DestChannel"],
        "target": "agent3@transfer",
        "target_delay": 2,
        "response": r.get("Response"),
        "message": r.get("Message"),
    }


def sc_paused_member(pbx: Asterisk, s: Session) -> dict:
    """agent1 paused ("training") is skipped; agent2 answers. Then a member is added and
    removed, and agent1 unpaused."""
    s.action("QueuePause", Interface="Local/agent1@agents/n", Paused="true", Reason="training")
    pbx.originate_queue_call(s.ami, callerid=CALLER, agent_delay=2, agent_talk=2)
    s.settle()
    s.action("QueueStatus", Queue="complaints")
    s.action("QueueAdd", Queue="complaints", Interface="Local/agent30@agents/n",
             MemberName="agent30", StateInterface="Custom:agent30")  # fmt: skip
    s.pump(0.5)
    s.action("QueueRemove", Queue="complaints", Interface="Local/agent30@agents/n")
    s.action("QueuePause", Interface="Local/agent1@agents/n", Paused="false")
    s.pump(0.5)
    return {"paused": "agent1", "reason": "training", "answered_by": "agent2", "added": "agent30"}


def _duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def sc_recorded_conversation(pbx: Asterisk, s: Session, out: Path) -> dict:
    c = pbx.make_prompt("ew-complaint", COMPLAINT, voice="en-us")
    a = pbx.make_prompt("ew-reply", REPLY, voice="en-us")
    dc, da = _duration(c), _duration(a)
    delay = 2
    rec = f"conv-{int(time.time())}"
    pbx.originate_queue_call(
        s.ami,
        callerid=CALLER,
        agent_delay=delay,
        record=True,
        rec_name=rec,
        phone_say="ew-complaint",
        phone_say_wait=delay + 1,  # handset answered at once
        agent_say="ew-reply",
        agent_say_wait=round(dc + 2, 1),  # agent waits for the complaint
        agent_talk=1,
    )
    s.settle(timeout=120)
    time.sleep(0.5)
    dest = out / "recordings"
    dest.mkdir(parents=True, exist_ok=True)
    files = {}
    for f in sorted(pbx.recordings_dir.glob(f"{rec}*.wav")):
        shutil.copyfile(f, dest / f.name.replace(rec, "conversation"))
        files[f.name.replace(rec, "conversation")] = inspect_wav(f)
    return {
        "complaint_s": round(dc, 2),
        "reply_s": round(da, 2),
        "agent_delay": delay,
        "files": files,
        "complaint_text": COMPLAINT,
        "reply_text": REPLY,
    }


def inspect_wav(path: Path) -> dict:
    """Header facts vs file size, plus RMS per channel assuming the header's / stereo layout."""
    import array
    import struct

    data = path.read_bytes()
    info: dict = {"bytes": len(data)}
    if data[:4] != b"RIFF":
        return info
    info["riff_size"] = struct.unpack_from("<I", data, 4)[0]
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"fmt ":
            fmt, ch, rate, byterate, align, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            info.update(
                format=fmt, channels=ch, rate=rate, byterate=byterate, blockalign=align, bits=bits
            )
        elif cid == b"data":
            info["data_size_header"] = size
            info["data_offset"] = pos + 8
            info["data_size_actual"] = len(data) - pos - 8
            break
        pos += 8 + size + (size & 1)
    if "data_offset" in info and info.get("bits") == 16:
        pcm = array.array(
            "h",
            data[info["data_offset"] : info["data_offset"] + (info["data_size_actual"] // 4) * 4],
        )
        info["seconds_by_header"] = round(info["data_size_actual"] / max(1, info["byterate"]), 2)
        if len(pcm) >= 2:
            left, right = pcm[0::2], pcm[1::2]
            rms = lambda xs: round((sum(x * x for x in xs) / max(1, len(xs))) ** 0.5, 1)  # noqa: E731
            info["rms_if_stereo"] = [rms(left), rms(right)]
            info["seconds_if_stereo"] = round(len(left) / info["rate"], 2)
    return info


def sc_concurrent_20(pbx: Asterisk, s: Session) -> dict:
    rnd = random.Random(20)
    calls = []
    for n in range(20):
        d = rnd.choice([1, 2, 3, 4, 5, 6])
        ab = 3 if n % 7 == 3 else None  # three abandons in the mix
        cid = f"1380013{8000 + n:04d}"
        pbx.originate_queue_call(
            s.ami, callerid=cid, agent_delay=d, agent_talk=4, abandon_after=ab if ab else None
        )
        calls.append({"callerid": cid, "agent_delay": d, "abandon_after": ab})
    s.pump(4)
    s.action("QueueStatus", Queue="complaints")
    s.action("CoreShowChannels")
    s.settle(timeout=120)
    return {"calls": calls}


def _restart(pbx: Asterisk, s: Session, how: str) -> dict:
    pbx.originate_queue_call(s.ami, callerid=CALLER, agent_delay=2, agent_talk=30)
    s.wait(is_event("AgentConnect"), 20)
    s.pump(2)
    t0 = time.monotonic()
    if how == "graceful":
        pbx.stop()  # SIGTERM: like 'core stop now'
    else:
        pbx.kill()  # SIGKILL: crash
    s.read_until_closed(5)
    t_down = time.monotonic() - t0
    pbx.start()
    s.reconnect()
    s.action("CoreShowChannels")
    s.action("QueueStatus", Queue="complaints")
    s.pump(2)
    # one call after the restart, to show it works and what the ids look like
    pbx.originate_queue_call(s.ami, callerid=CALLER, agent_delay=1, agent_talk=2)
    s.settle()
    return {"how": how, "down_s": round(t_down, 2), "start_s": round(pbx.start_seconds or 0, 2)}


def sc_restart_graceful(pbx: Asterisk, s: Session) -> dict:
    return _restart(pbx, s, "graceful")


def sc_restart_kill(pbx: Asterisk, s: Session) -> dict:
    return _restart(pbx, s, "kill")


SCENARIOS = {
    "queue_answered": sc_queue_answered,
    "queue_abandon": sc_queue_abandon,
    "queue_rona": sc_queue_rona,
    "queue_timeout": sc_queue_timeout,
    "direct_answered": sc_direct_answered,
    "direct_noanswer": sc_direct_noanswer,
    "blind_transfer": sc_blind_transfer,
    "redirect_transfer": sc_redirect_transfer,
    "queue_overflow": sc_queue_overflow,
    "attended_transfer": sc_attended_transfer,
    "paused_member": sc_paused_member,
    "recorded_conversation": sc_recorded_conversation,
    "concurrent_20": sc_concurrent_20,
    "restart_graceful": sc_restart_graceful,
    "restart_kill": sc_restart_kill,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT_DIR / "tests" / "data" / "ami"))
    ap.add_argument("--only", default="")
    ap.add_argument(
        "--summary", nargs="*", help="print a compact event list of .raw files and exit"
    )
    ap.add_argument("--all-events", action="store_true")
    args = ap.parse_args()
    if args.summary is not None:
        for f in args.summary:
            print(f"== {f}")
            print(summarize(Path(f).read_bytes(), args.all_events))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)

    t = time.monotonic()
    root = build_root()
    print(f"root ready in {time.monotonic() - t:.1f}s: {root}", flush=True)
    meta_path = out / "scenarios.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    pbx = Asterisk(
        root,
        name="capture",
        agents=24,
        strategy="linear",
        member_timeout=5,
        retry=1,
        overflow_members=("agent25",),
    )
    try:
        pbx.start()
        meta["_asterisk"] = {
            "start_s": round(pbx.start_seconds or 0, 3),
            "version": pbx.ami()
            .command("core show settings")
            .split("Version:", 1)[1]
            .split("\n", 1)[0]
            .strip(),
        }
        print(
            f"asterisk started in {pbx.start_seconds:.2f}s on AMI port {pbx.ami_port}", flush=True
        )
        for name in names:
            fn = SCENARIOS[name]
            if not pbx.running:
                pbx.start()
            s = Session(pbx)
            s.pump(0.3)
            started = time.time()
            t0 = time.monotonic()
            try:
                params = fn(pbx, s, out) if name == "recorded_conversation" else fn(pbx, s)
                err = None
            except Exception as e:  # keep what was captured, report the failure
                params, err = {}, repr(e)
            secs = time.monotonic() - t0
            raw = s.raw()
            s.close()
            (out / f"{name}.raw").write_bytes(raw)
            meta[name] = {
                "started_unix": round(started, 3),
                "seconds": round(secs, 2),
                "bytes": len(raw),
                "messages": raw.count(b"\r\n\r\n"),
                "params": params,
                "error": err,
            }
            print(
                f"{name:24s} {secs:6.1f}s {len(raw):8d} bytes {'ERROR ' + err if err else ''}",
                flush=True,
            )
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    finally:
        pbx.stop()
        shutil.copyfile(pbx.log_dir / "messages.log", out / "asterisk-messages.log")


# --------------------------------------------------------------------------- summaries

NOISE = {
    "VarSet",
    "Newexten",
    "TestEvent",
    "DeviceStateChange",
    "NewConnectedLine",
    "NewCallerid",
    "SuccessfulAuth",
    "FullyBooted",
    "HangupHandlerPush",
    "HangupHandlerRun",
    "SoftHangupRequest",
    "HangupRequest",
    "MusicOnHoldStart",
    "MusicOnHoldStop",
    "NewAccountCode",
    "Cdr",
    "ChallengeSent",
}
KEYS = [
    "Channel",
    "Uniqueid",
    "Linkedid",
    "DestChannel",
    "DestUniqueid",
    "Queue",
    "Interface",
    "MemberName",
    "Position",
    "OriginalPosition",
    "HoldTime",
    "RingTime",
    "TalkTime",
    "Reason",
    "Cause",
    "Cause-txt",
    "DialStatus",
    "DialString",
    "ChannelStateDesc",
    "CallerIDNum",
    "Status",
    "Paused",
    "InCall",
    "BridgeUniqueid",
    "Extension",
    "Context",
    "TransfererChannel",
    "TransfereeChannel",
    "IsExternal",
    "Result",
    "Response",
    "EventList",
    "ListItems",
    "Shutdown",
    "Restart",
    "LocalOneChannel",
    "LocalTwoChannel",
    "LocalOptimization",
    "Application",
    "AppData",
]


def parse_raw(raw: bytes) -> list[list[tuple[str, str]]]:
    msgs = []
    for block in raw.split(b"\r\n\r\n"):
        fields = []
        for line in block.decode("utf-8", "replace").split("\r\n"):
            k, sep, v = line.partition(": ")
            if sep:
                fields.append((k, v))
            elif line.strip():
                fields.append(("", line.strip()))
        if fields:
            msgs.append(fields)
    return msgs


def summarize(raw: bytes, all_events: bool = False) -> str:
    out = []
    t0 = None
    short: dict[str, str] = {}

    def sid(u: str) -> str:
        if u not in short:
            short[u] = f"u{len(short)}"
        return short[u]

    for fields in parse_raw(raw):
        d = dict(fields)
        name = d.get("Event") or (f"Response:{d['Response']}" if "Response" in d else fields[0][1])
        if not all_events and name in NOISE:
            continue
        ts = d.get("Timestamp")
        rel = ""
        if ts:
            t = float(ts)
            t0 = t0 if t0 is not None else t
            rel = f"{t - t0:7.2f}"
        else:
            rel = "   (no ts)"
        parts = []
        for k in KEYS:
            if k in d and d[k] != "":
                v = d[k]
                if k in ("Uniqueid", "Linkedid", "DestUniqueid"):
                    v = sid(v)
                parts.append(f"{k}={v}")
        out.append(f"{rel} {name:22s} " + " ".join(parts))
    return "\n".join(out)


if __name__ == "__main__":
    main()
