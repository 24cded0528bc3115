"""A real Asterisk 22 for tests, run from a throw-away Debian root (see build_root.sh).

Each :class:`Asterisk` instance gets its own directory inside the root
(``/earwitness/<name>/{etc,spool,run,log,lib,cache}``) and its own free AMI port, so
several instances (or several test sessions) do not collide.  Asterisk is started
with ``chroot <root> asterisk -C <instance>/etc/asterisk.conf -f -n`` (never ``-U``).

Scenario dialplan (all driven by AMI ``Originate`` of ``Local/`` channels; see
:meth:`Asterisk.originate_queue_call` and friends, and NOTES.md):

* ``phone`` context         - the customer's "handset" (the ``;1`` half of the
  originated ``Local/<x>@customer`` channel).  Optional speech, optional abandon.
* ``customer`` context      - the PBX side of the inbound call (``;2`` half):
  ``queue`` (Answer, optional MixMonitor, Queue), ``direct`` (Dial an agent).
* ``agents`` context        - queue members / extensions ``agentN``: Ringing,
  Wait(delay), Answer, optional speech, Wait(talk), Hangup.
* ``transfer`` context      - targets of blind transfers / redirects.

Channel variables (pass them to ``Originate`` as ``Variable``; the ``__`` prefix
makes them inherit through Queue/Dial to the agent side):

=====================  ===============================================================
``__AGENT_DELAY``       seconds every agent rings before answering (default 2)
``__AGENT_DELAY_<ag>``  per-agent override, e.g. ``__AGENT_DELAY_agent1=60`` (RONA)
``__AGENT_TALK``        seconds the agent stays after answering (default 5)
``__AGENT_TALK_<ag>``   per-agent override
``__AGENT_SAY``         prompt the agent plays after answering (optional)
``__AGENT_SAY_WAIT``    seconds the agent waits before speaking (default 0)
``PHONE_SAY``           prompt the customer's handset plays once connected
``PHONE_SAY_WAIT``      seconds the handset waits (after being answered) before it
``ABANDON_AFTER``       handset hangs up this many seconds after being answered
``QUEUE_TIMEOUT``       Queue() timeout (default 40)
``RECORD``              1 -> MixMonitor(<REC_NAME>.wav,D r(..-in.wav) t(..-out.wav))
``REC_NAME``            recording base name (default rec-<UNIQUEID>)
``DIAL_TARGET``         for exten ``direct``: the agent exten to Dial (default agent1)
=====================  ===============================================================
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build_root.sh"
STAMP_NAME = ".earwitness-root-complete"
SOUNDS_IN_ROOT = "/usr/local/share/asterisk/sounds"
MODDIR_IN_ROOT = "/usr/lib/x86_64-linux-gnu/asterisk/modules"

# Modules we never need; they are slow to load, noisy or want network services.
NOLOAD = [
    "chan_pjsip.so",
    "chan_iax2.so",
    "chan_unistim.so",
    "chan_motif.so",
    "chan_console.so",
    "chan_websocket.so",
    "chan_audiosocket.so",
    "chan_rtp.so",
    "chan_sip.so",
    "res_pjsip*",
    "res_pjproject.so",
    "func_pjsip_aor.so",
    "func_pjsip_contact.so",
    "func_pjsip_endpoint.so",
    "res_hep.so",
    "res_hep_pjsip.so",
    "res_hep_rtcp.so",
    "res_ari*",
    "res_stasis*",
    "app_stasis.so",
    "app_stasis_broadcast.so",
    "res_http_websocket.so",
    "res_http_media_cache.so",
    "res_http_post.so",
    "res_phoneprov.so",
    "res_prometheus.so",
    "cdr_*",
    "cel_*",
    "res_config_*",
    "res_odbc.so",
    "res_odbc_transaction.so",
    "func_odbc.so",
    "app_voicemail*",
    "app_minivm.so",
    "res_calendar*",
    "res_xmpp.so",
    "pbx_dundi.so",
    "pbx_lua.so",
    "pbx_ael.so",
    "pbx_realtime.so",
    "res_ael_share.so",
    "res_smdi.so",
    "res_snmp.so",
    "res_corosync.so",
    "res_stir_shaken.so",
    "res_geolocation.so",
    "res_aeap.so",
    "res_websocket_client.so",
    "res_stun_monitor.so",
    "res_parking.so",
    "app_agent_pool.so",
    "app_confbridge.so",
    "app_page.so",
    "func_aes.so",
    "app_amd.so",
    "app_followme.so",
    "app_jack.so",
    "res_fax*",
    "app_festival.so",
    "res_audiosocket.so",
    "app_audiosocket.so",
    "res_rtp_multicast.so",
    "res_rtp_asterisk.so",
    "bridge_native_rtp.so",
    "res_resolver_unbound.so",
    "res_curl.so",
    "func_curl.so",
    "res_config_curl.so",
    "app_sms.so",
    "res_phoneprov.so",
    "app_alarmreceiver.so",
    "res_mwi_devstate.so",
    "res_security_log.so",
    "app_adsiprog.so",
    "res_adsi.so",
    "app_getcpeid.so",
    "res_crypto.so",
    "res_statsd.so",
    "res_chan_stats.so",
    "res_endpoint_stats.so",
    "res_clialiases.so",
    "res_tonedetect.so",
    "res_pjsip_stir_shaken.so",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_root() -> Path:
    env = os.environ.get("EARWITNESS_PBX_ROOT")
    return Path(env) if env else Path.home() / ".cache" / "earwitness" / "asterisk-root"


def build_root(root: Path | None = None) -> Path:
    """Run build_root.sh (cached: returns at once when the stamp exists)."""
    root = root or default_root()
    if (root / STAMP_NAME).exists() and not os.environ.get("EARWITNESS_PBX_REBUILD"):
        return root
    env = dict(os.environ, EARWITNESS_PBX_ROOT=str(root))
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not (root / STAMP_NAME).exists():
        raise RuntimeError(
            f"build_root.sh failed (rc={proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return root


def _is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


# --------------------------------------------------------------------------- AMI helper


@dataclass
class AMIMessage:
    """One AMI message: ordered (key, value) pairs; ``msg["Key"]`` gives the first value."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    received: float = 0.0

    def __getitem__(self, key: str) -> str:
        for k, v in self.fields:
            if k.lower() == key.lower():
                return v
        raise KeyError(key)

    def get(self, key: str, default: str | None = None) -> str | None:
        try:
            return self[key]
        except KeyError:
            return default

    @property
    def event(self) -> str | None:
        return self.get("Event")

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "AMIMessage(" + ", ".join(f"{k}={v!r}" for k, v in self.fields) + ")"


class AMIError(RuntimeError):
    pass


class AMI:
    """Tiny synchronous AMI client for tests (plain socket, no threads).

    All bytes received are appended to :attr:`raw` (used by the capture script).
    Events read while waiting for a response are kept in :attr:`events`.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.raw = bytearray()
        self._buf = b""
        self.events: list[AMIMessage] = []
        self._seq = 0
        line = self._read_line(timeout)
        if not line.startswith("Asterisk Call Manager/"):
            raise AMIError(f"unexpected banner {line!r}")
        self.banner = line

    # -- low level
    def _recv(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not chunk:
            raise ConnectionError("AMI connection closed")
        self.raw += chunk
        self._buf += chunk
        return True

    def _read_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self._buf:
            if not self._recv(deadline):
                raise TimeoutError("no AMI banner")
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_message(self, timeout: float) -> AMIMessage | None:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            if not self._recv(deadline):
                return None
        block, self._buf = self._buf.split(b"\r\n\r\n", 1)
        msg = AMIMessage(received=time.time())
        for line in block.decode("utf-8", "replace").split("\r\n"):
            k, sep, v = line.partition(":")
            if sep:
                msg.fields.append((k.strip(), v.strip()))
            elif line:
                msg.fields.append(("", line))
        return msg

    def send(self, action: str, **fields: object) -> str:
        self._seq += 1
        action_id = f"t{self._seq}-{uuid.uuid4().hex[:6]}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"]
        for k, v in fields.items():
            if isinstance(v, list | tuple):
                lines += [f"{k}: {x}" for x in v]
            elif v is not None:
                lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    # -- high level
    def action(self, action: str, timeout: float = 10.0, **fields: object) -> AMIMessage:
        """Send an action and return its Response (events seen meanwhile go to .events)."""
        action_id = self.send(action, **fields)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(max(0.0, deadline - time.monotonic()))
            if msg is None:
                raise TimeoutError(f"no response to {action}")
            if msg.get("Response") is not None and msg.get("ActionID") == action_id:
                return msg
            self.events.append(msg)

    def login(self, user: str, secret: str, events: str = "on") -> AMIMessage:
        r = self.action("Login", Username=user, Secret=secret, Events=events)
        if r.get("Response") != "Success":
            raise AMIError(f"login failed: {r}")
        return r

    def command(self, cmd: str) -> str:
        r = self.action("Command", Command=cmd)
        return "\n".join(v for k, v in r.fields if k == "Output")

    def originate(
        self,
        channel: str,
        *,
        callerid: str | None = None,
        variables: dict[str, object] | None = None,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str | None = None,
        timeout_ms: int = 120_000,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
    ) -> AMIMessage:
        fields: dict[str, object] = {"Channel": channel, "Async": "true", "Timeout": timeout_ms}
        if callerid:
            fields["CallerID"] = callerid
        if application:
            fields["Application"] = application
            if data is not None:
                fields["Data"] = data
        else:
            fields.update(Context=context or "phone", Exten=exten or "s", Priority=priority)
        if variables:
            fields["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        if channel_id:
            fields["ChannelId"] = channel_id
        if other_channel_id:
            fields["OtherChannelId"] = other_channel_id
        return self.action("Originate", **fields)

    def redirect(
        self, channel: str, exten: str, context: str = "transfer", priority: int = 1
    ) -> AMIMessage:
        return self.action(
            "Redirect", Channel=channel, Exten=exten, Context=context, Priority=priority
        )

    def attended_transfer(self, channel: str, exten: str, context: str = "transfer") -> AMIMessage:
        """Atxfer: the agent's channel starts an attended transfer (needs Queue option t)."""
        return self.action("Atxfer", Channel=channel, Exten=exten, Context=context)

    def pause(self, interface: str, reason: str, paused: bool = True) -> AMIMessage:
        return self.action(
            "QueuePause", Interface=interface, Paused=str(paused).lower(), Reason=reason
        )

    def blind_transfer(self, channel: str, exten: str, context: str = "transfer") -> AMIMessage:
        return self.action("BlindTransfer", Channel=channel, Exten=exten, Context=context)

    def hangup(self, channel: str, cause: int | None = None) -> AMIMessage:
        return self.action("Hangup", Channel=channel, Cause=cause)

    def wait_event(
        self,
        pred: Callable[[AMIMessage], bool] | str,
        timeout: float = 30.0,
        consume_backlog: bool = True,
    ) -> AMIMessage:
        """Return the first event matching ``pred`` (an event name or a predicate).

        Events already buffered in .events are checked (and consumed up to the match) first.
        """
        if isinstance(pred, str):
            name = pred
            pred = lambda m: m.event == name  # noqa: E731
        if consume_backlog:
            for i, m in enumerate(self.events):
                if pred(m):
                    del self.events[: i + 1]
                    return m
            self.events.clear()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self.read_message(max(0.0, left))
            if msg is None:
                raise TimeoutError("event not seen")
            if pred(msg):
                return msg

    def drain(self, seconds: float) -> list[AMIMessage]:
        """Read everything for ``seconds``; returns (and keeps in .events) what arrived."""
        out: list[AMIMessage] = []
        deadline = time.monotonic() + seconds
        while True:
            try:
                msg = self.read_message(max(0.0, deadline - time.monotonic()))
            except ConnectionError:
                break
            if msg is None:
                break
            out.append(msg)
        self.events.extend(out)
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("Logoff")
        self.sock.close()


# --------------------------------------------------------------------------- Asterisk


class Asterisk:
    """One Asterisk process in the throw-away root."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        name: str | None = None,
        ami_user: str = "earwitness",
        ami_secret: str = "earwitness-secret",
        agents: int = 3,
        strategy: str = "linear",
        member_timeout: int = 5,
        retry: int = 1,
        wrapuptime: int = 0,
        ring_in_use: bool = False,
        country: str = "cn",
        extra_dialplan: str = "",
        start_timeout: float = 30.0,
        overflow_members: tuple[str, ...] = (),
        tls_cert: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.root = Path(root) if root else default_root()
        if not (self.root / STAMP_NAME).exists():
            raise RuntimeError(
                f"{self.root} is not a complete Asterisk root; run tests/pbx/build_root.sh"
            )
        self.name = name or f"i{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.inst_in_root = f"/earwitness/{self.name}"
        self.inst = self.root / self.inst_in_root.lstrip("/")
        self.ami_host = "127.0.0.1"
        self.ami_port = _free_port()
        self.ami_user, self.ami_secret = ami_user, ami_secret
        # AMI over TLS too (manager.conf tlsenable): (certificate PEM, private key PEM)
        self.tls_cert = tls_cert
        self.ami_tls_port = _free_port() if tls_cert else None
        self.agents, self.strategy, self.member_timeout = agents, strategy, member_timeout
        self.retry, self.wrapuptime, self.ring_in_use = retry, wrapuptime, ring_in_use
        self.country, self.extra_dialplan = country, extra_dialplan
        self.start_timeout = start_timeout
        # Members of the second queue ``overflow`` (exten ``overflow`` waits in complaints
        # for QUEUE_TIMEOUT, then in overflow): e.g. ("agent3",). Empty: no such queue.
        self.overflow_members = overflow_members
        self.proc: subprocess.Popen[bytes] | None = None
        self._mounted_proc = False
        self.start_seconds: float | None = None
        self._write_configs()

    # -- paths
    @property
    def recordings_dir(self) -> Path:
        return self.inst / "spool" / "monitor"

    @property
    def sounds_dir(self) -> Path:
        return self.root / SOUNDS_IN_ROOT.lstrip("/")

    @property
    def log_dir(self) -> Path:
        return self.inst / "log"

    def sound_path_in_root(self, name: str) -> str:
        """What Playback() wants for a prompt made by make_prompt (no extension)."""
        return f"{SOUNDS_IN_ROOT}/{name}"

    # -- configuration
    def _write_configs(self) -> None:
        i = self.inst_in_root
        for d in (
            "etc",
            "spool/monitor",
            "spool/outgoing",
            "spool/tmp",
            "run",
            "log",
            "lib",
            "cache",
        ):
            (self.inst / d).mkdir(parents=True, exist_ok=True)
        for d in (
            "var/lib/asterisk",
            "var/run/asterisk",
            "var/log/asterisk",
            "var/spool/asterisk",
            SOUNDS_IN_ROOT.lstrip("/"),
            "usr/local/share/asterisk/moh",
        ):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._ensure_moh()
        etc = self.inst / "etc"
        files = {
            "asterisk.conf": f"""[directories]
astcachedir => {i}/cache
astetcdir => {i}/etc
astmoddir => {MODDIR_IN_ROOT}
astvarlibdir => /var/lib/asterisk
astdbdir => {i}/lib
astkeydir => {i}/lib
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {i}/spool
astrundir => {i}/run
astlogdir => {i}/log
astsbindir => /usr/sbin
[options]
verbose = 3
debug = 0
systemname = earwitness-test
defaultlanguage = en
transmit_silence = yes
hideconnect = yes
""",
            "modules.conf": "[modules]\nautoload=yes\n; the dialplan must exist before app_queue asks Local/ members for their state\npreload => pbx_config.so\n"
            + "".join(f"noload => {m}\n" for m in NOLOAD if "*" not in m)
            + "\n",
            "logger.conf": """[general]
dateformat = %F %T.%3q
[logfiles]
messages.log => notice,warning,error,verbose(3)
""",
            "manager.conf": f"""[general]
enabled = yes
port = {self.ami_port}
bindaddr = 127.0.0.1
timestampevents = yes
displayconnects = no
webenabled = no
{self._manager_tls()}

[{self.ami_user}]
secret = {self.ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
writetimeout = 5000
""",
            "musiconhold.conf": "[general]\n[default]\nmode=files\ndirectory=/usr/local/share/asterisk/moh\n",
            "indications.conf": self._indications_conf(),
            "queues.conf": self._queues_conf(),
            "extensions.conf": self._extensions_conf(),
            # atxfer: the AMI Atxfer action sends this code into the bridge for the agent
            "features.conf": "[general]\ntransferdigittimeout = 1\n[featuremap]\natxfer => *2\n",
            "cdr.conf": "[general]\nenable=no\n",
            "cel.conf": "[general]\nenable=no\n",
            "ccss.conf": "[general]\n",
            "cli.conf": "[startup_commands]\n",
            "codecs.conf": "[speex]\n",
            "udptl.conf": "[general]\n",
            "rtp.conf": "[general]\n",
            "http.conf": "[general]\nenabled=no\n",
            "acl.conf": "",
        }
        # wildcard noloads have to be expanded: modules.conf does not glob
        mods = sorted(os.listdir(self.root / MODDIR_IN_ROOT.lstrip("/")))
        extra = []
        for pat in NOLOAD:
            if "*" in pat:
                rx = re.compile("^" + re.escape(pat).replace(r"\*", ".*") + "$")
                extra += [m for m in mods if rx.match(m)]
        files["modules.conf"] += "".join(f"noload => {m}\n" for m in sorted(set(extra)))
        for fname, text in files.items():
            (etc / fname).write_text(text)

    def _manager_tls(self) -> str:
        """manager.conf's TLS listener, with the certificate written into the instance."""
        if self.tls_cert is None:
            return ""
        cert, key = self.tls_cert
        (self.inst / "etc" / "ami-cert.pem").write_bytes(cert)
        (self.inst / "etc" / "ami-key.pem").write_bytes(key)
        (self.inst / "etc" / "ami-key.pem").chmod(0o600)
        i = self.inst_in_root
        return (
            f"tlsenable = yes\ntlsbindaddr = 127.0.0.1:{self.ami_tls_port}\n"
            f"tlscertfile = {i}/etc/ami-cert.pem\ntlsprivatekey = {i}/etc/ami-key.pem\n"
        )

    def _indications_conf(self) -> str:
        """The packaged indications.conf with the default country replaced (ringback cadence)."""
        dist = self.root / "etc/asterisk.dist/indications.conf"
        text = dist.read_text() if dist.exists() else "[general]\ncountry=us\n"
        return re.sub(r"(?m)^country\s*=.*$", f"country={self.country}", text, count=1)

    def _ensure_moh(self) -> None:
        moh = self.root / "usr/local/share/asterisk/moh/soft-tone.wav"
        if moh.exists():
            return
        tmp = moh.with_suffix(f".{os.getpid()}.tmp.wav")
        subprocess.run(
            [
                "sox",
                "-n",
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                str(tmp),
                "synth",
                "3",
                "sine",
                "300",
                "vol",
                "0.05",
            ],
            check=True,
        )
        os.replace(tmp, moh)

    def _queues_conf(self) -> str:
        members = "".join(
            f"member => Local/agent{n}@agents/n,0,agent{n},Custom:agent{n}\n"
            for n in range(1, self.agents + 1)
        )
        return f"""[general]
persistentmembers = no
autofill = yes
monitor-type = MixMonitor
shared_lastcall = yes
log_membername_as_agent = yes

[complaints]
strategy = {self.strategy}
timeout = {self.member_timeout}
retry = {self.retry}
wrapuptime = {self.wrapuptime}
ringinuse = {"yes" if self.ring_in_use else "no"}
maxlen = 0
joinempty = yes
leavewhenempty = no
announce-frequency = 0
announce-holdtime = no
periodic-announce-frequency = 0
reportholdtime = no
setinterfacevar = yes
setqueueentryvar = yes
setqueuevar = yes
musicclass = default
{members}{self._overflow_queue()}"""

    def _overflow_queue(self) -> str:
        if not self.overflow_members:
            return ""
        members = "".join(f"member => Local/{a}@agents/n,0,{a},Custom:{a}\n"
                          for a in self.overflow_members)  # fmt: skip
        return f"""
[overflow]
strategy = linear
timeout = {self.member_timeout}
retry = {self.retry}
ringinuse = no
joinempty = yes
leavewhenempty = no
announce-frequency = 0
periodic-announce-frequency = 0
musicclass = default
{members}"""

    def _extensions_conf(self) -> str:
        return (
            r"""[general]
static = yes
writeprotect = yes
clearglobalvars = no

[globals]

; ---- the customer's handset: the ;1 half of an originated Local/<x>@customer ----
[phone]
exten => s,1,NoOp(handset ${CHANNEL} cid=${CALLERID(num)})
 same => n,GotoIf($["${ABANDON_AFTER}" != ""]?abandon)
 same => n,GotoIf($["${PHONE_SAY}" = ""]?idle)
 same => n,Wait(${IF($["${PHONE_SAY_WAIT}" = ""]?0:${PHONE_SAY_WAIT})})
 same => n,Playback(${PHONE_SAY})
 same => n(idle),Wait(600)
 same => n,Hangup()
 same => n(abandon),Wait(${ABANDON_AFTER})
 same => n,Hangup()

; ---- the PBX side of the inbound call (;2 half) ----
[customer]
exten => queue,1,NoOp(complaint call from ${CALLERID(num)})
 same => n,Answer()
 same => n,Set(__AGENT_DELAY=${IF($["${AGENT_DELAY}" = ""]?2:${AGENT_DELAY})})
 same => n,GotoIf($["${RECORD}" != "1"]?q)
 same => n,Set(REC=${IF($["${REC_NAME}" = ""]?rec-${UNIQUEID}:${REC_NAME})})
 same => n,MixMonitor(${REC}.wav,Dr(${REC}-in.wav)t(${REC}-out.wav))
 same => n(q),Queue(complaints,${QUEUE_OPTS},,,${IF($["${QUEUE_TIMEOUT}" = ""]?40:${QUEUE_TIMEOUT})})
 same => n,NoOp(QUEUESTATUS=${QUEUESTATUS})
 same => n,Hangup()

; overflow: complaints until its Queue() timeout, then the overflow queue
exten => overflow,1,NoOp(complaint call from ${CALLERID(num)}, overflow after ${QUEUE_TIMEOUT} s)
 same => n,Answer()
 same => n,Set(__AGENT_DELAY=${IF($["${AGENT_DELAY}" = ""]?2:${AGENT_DELAY})})
 same => n,Queue(complaints,${QUEUE_OPTS},,,${IF($["${QUEUE_TIMEOUT}" = ""]?40:${QUEUE_TIMEOUT})})
 same => n,Queue(overflow,${QUEUE_OPTS},,,40)
 same => n,Hangup()

exten => direct,1,NoOp(direct call from ${CALLERID(num)} to ${DIAL_TARGET})
 same => n,Set(__AGENT_DELAY=${IF($["${AGENT_DELAY}" = ""]?2:${AGENT_DELAY})})
 same => n,GotoIf($["${RECORD}" != "1"]?d)
 same => n,Set(REC=${IF($["${REC_NAME}" = ""]?rec-${UNIQUEID}:${REC_NAME})})
 same => n,MixMonitor(${REC}.wav,Dr(${REC}-in.wav)t(${REC}-out.wav))
 same => n(d),Dial(Local/${IF($["${DIAL_TARGET}" = ""]?agent1:${DIAL_TARGET})}@agents/n,${IF($["${DIAL_TIMEOUT}" = ""]?30:${DIAL_TIMEOUT})})
 same => n,NoOp(DIALSTATUS=${DIALSTATUS})
 same => n,Hangup()

; ---- agents (queue members and extensions) ----
[agents]
exten => _age[n]t.,1,NoOp(agent ${EXTEN} rings for caller ${CALLERID(num)})
 same => n,Set(D=${AGENT_DELAY_${EXTEN}})
 same => n,Set(D=${IF($["${D}" = ""]?${IF($["${AGENT_DELAY}" = ""]?2:${AGENT_DELAY})}:${D})})
 same => n,Set(DEVICE_STATE(Custom:${EXTEN})=RINGING)
 same => n,Set(CHANNEL(hangup_handler_push)=agent-hangup,s,1(${EXTEN}))
 same => n,Ringing()
 same => n,Wait(${D})
 same => n,Set(DEVICE_STATE(Custom:${EXTEN})=INUSE)
 same => n,Answer()
 same => n,GotoIf($["${AGENT_SAY}" = ""]?talk)
 same => n,Wait(${IF($["${AGENT_SAY_WAIT}" = ""]?0:${AGENT_SAY_WAIT})})
 same => n,Playback(${AGENT_SAY})
 same => n(talk),Set(T=${AGENT_TALK_${EXTEN}})
 same => n,Wait(${IF($["${T}" = ""]?${IF($["${AGENT_TALK}" = ""]?5:${AGENT_TALK})}:${T})})
 same => n,Hangup()

; (Pattern note: N, X, Z are wildcards in patterns, case-insensitively, hence _age[n]t.)
; Local/ members report Invalid device state to app_queue (no channel yet), so members use
; Custom:agentN as state_interface, driven from here.
[agent-hangup]
exten => s,1,Set(DEVICE_STATE(Custom:${ARG1})=NOT_INUSE)
 same => n,Return()

; ---- transfer targets ----
[transfer]
exten => _age[n]t.,1,NoOp(transfer of ${CALLERID(num)} to ${EXTEN})
 same => n,Dial(Local/${EXTEN}@agents/n,30)
 same => n,Hangup()
exten => queue,1,Queue(complaints,,,,40)
 same => n,Hangup()
; DTMF-dialable aliases (attended transfers are dialled as digits): 8N -> agentN
exten => _8X,1,Goto(agent${EXTEN:1},1)

"""
            + self.extra_dialplan
        )

    # -- prompts
    def make_prompt(
        self, name: str, text: str, voice: str = "en-us", speed: int | None = None
    ) -> Path:
        """Speak ``text`` with espeak-ng into ``<sounds_dir>/<name>.wav`` (8 kHz mono 16 bit).

        Returns the host path; use ``sound_path_in_root(name)`` in the dialplan.
        """
        out = self.sounds_dir / f"{name}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as td:
            raw = Path(td) / "raw.wav"
            cmd = ["espeak-ng", "-v", voice, "-w", str(raw)]
            if speed:
                cmd += ["-s", str(speed)]
            subprocess.run(cmd + [text], check=True, capture_output=True)
            tmp = Path(td) / "8k.wav"
            subprocess.run(
                [
                    "sox",
                    str(raw),
                    "-r",
                    "8000",
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed-integer",
                    str(tmp),
                ],
                check=True,
                capture_output=True,
            )
            shutil.copyfile(tmp, out.with_suffix(".tmp"))
            os.replace(out.with_suffix(".tmp"), out)
        return out

    # -- lifecycle
    def _asterisk_pids(self) -> list[int]:
        pids = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if os.readlink(p / "root") != str(self.root):
                    continue
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"asterisk" in cmd:
                pids.append(int(p.name))
        return pids

    def _proc_lock(self):  # noqa: ANN202 - tiny context manager
        """Serialise proc mount/unmount against other instances (other processes too)."""
        import contextlib
        import fcntl

        @contextlib.contextmanager
        def cm():  # noqa: ANN202
            lock_path = self.root / "earwitness" / ".proc.lock"
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "w") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                yield

        return cm()

    def _ensure_proc(self) -> None:
        proc_dir = self.root / "proc"
        proc_dir.mkdir(exist_ok=True)
        if not _is_mounted(proc_dir):
            subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
            self._mounted_proc = True

    def _release_proc(self) -> None:
        """Unmount the root's /proc when no Asterisk of any instance runs in the root any more."""
        proc_dir = self.root / "proc"
        with self._proc_lock():
            if not self._asterisk_pids() and _is_mounted(proc_dir):
                subprocess.run(["umount", "-l", str(proc_dir)], check=False)
        self._mounted_proc = False

    def start(self) -> Asterisk:
        if self.proc and self.proc.poll() is None:
            return self
        t0 = time.monotonic()
        for stale in (self.inst / "run").glob("*"):
            stale.unlink(missing_ok=True)
        self._console = open(self.log_dir / "console.log", "ab")
        with self._proc_lock():
            self._ensure_proc()
            self.proc = subprocess.Popen(
                [
                    "chroot",
                    str(self.root),
                    "asterisk",
                    "-C",
                    f"{self.inst_in_root}/etc/asterisk.conf",
                    "-f",
                    "-n",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"},
            )
            # hold the lock until the process is visible in /proc with the chroot as its root
            wait_for(
                lambda: (
                    self.proc is not None
                    and (self.proc.poll() is not None or self.proc.pid in self._asterisk_pids())
                ),
                5,
                0.01,
            )
        self.wait_ready(self.start_timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll until the AMI port answers with the banner and a login works."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"asterisk exited rc={self.proc.returncode}; see {self.log_dir}/console.log:\n"
                    + self._tail_console()
                )
            try:
                ami = AMI(self.ami_host, self.ami_port, timeout=2)
                try:
                    # AMI answers before the modules (pbx_config, app_queue) are loaded; Asterisk
                    # sends FullyBooted to every new session once booting has finished.
                    ami.login(self.ami_user, self.ami_secret, events="system")
                    ami.wait_event("FullyBooted", timeout=max(0.1, deadline - time.monotonic()))
                    names = {f"agent{n}" for n in range(1, self.agents + 1)}
                    for agent in sorted(names | set(self.overflow_members)):
                        ami.action(
                            "Setvar", Variable=f"DEVICE_STATE(Custom:{agent})", Value="NOT_INUSE"
                        )
                    return
                finally:
                    ami.sock.close()
            except (OSError, TimeoutError, AMIError, ConnectionError) as e:
                last = e
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise TimeoutError(
            f"AMI on port {self.ami_port} not ready after {timeout}s ({last!r})\n"
            + self._tail_console()
        )

    def assert_running(self) -> None:
        """Fail at once, with Asterisk's own last words, when the PBX process has exited
        (a crash inside Asterisk otherwise shows up as a poll timing out much later)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"asterisk exited rc={self.proc.returncode} during the test; "
                f"{self.log_dir}/console.log ends:\n" + self._tail_console()
            )

    def _tail_console(self) -> str:
        try:
            return (self.log_dir / "console.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM = 'core stop now'), then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
            except ProcessLookupError:
                pass
        self._after_exit()

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._after_exit()

    def _after_exit(self) -> None:
        if getattr(self, "_console", None):
            self._console.close()
            self._console = None  # type: ignore[assignment]
        self.proc = None
        self._release_proc()

    def restart(self) -> Asterisk:
        self.stop()
        # the AMI port stays the same, so clients can reconnect
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ami(self, events: str = "on", timeout: float = 10.0) -> AMI:
        """A logged-in :class:`AMI` connection."""
        a = AMI(self.ami_host, self.ami_port, timeout=timeout)
        a.login(self.ami_user, self.ami_secret, events=events)
        return a

    def cli(self, command: str) -> str:
        """Run a CLI command via ``asterisk -rx`` inside the root."""
        r = subprocess.run(
            [
                "chroot",
                str(self.root),
                "asterisk",
                "-C",
                f"{self.inst_in_root}/etc/asterisk.conf",
                "-rx",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return r.stdout

    def cleanup(self) -> None:
        """Remove this instance's directory (configs, recordings, logs)."""
        if self.running:
            self.kill()
        shutil.rmtree(self.inst, ignore_errors=True)

    def __enter__(self) -> Asterisk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scenario helpers (return the Originate response) -------------------------------
    def originate_queue_call(
        self,
        ami: AMI,
        *,
        callerid: str = "13800138000",
        agent_delay: float = 2,
        agent_delays: dict[str, float] | None = None,
        agent_talk: float = 5,
        abandon_after: float | None = None,
        record: bool = False,
        rec_name: str | None = None,
        phone_say: str | None = None,
        phone_say_wait: float | None = None,
        agent_say: str | None = None,
        agent_say_wait: float | None = None,
        queue_timeout: int = 40,
        extra_vars: dict[str, object] | None = None,
        exten: str = "queue",
        queue_opts: str = "",
    ) -> AMIMessage:
        v: dict[str, object] = {
            "__AGENT_DELAY": agent_delay,
            "__AGENT_TALK": agent_talk,
            "QUEUE_TIMEOUT": queue_timeout,
        }
        for ag, d in (agent_delays or {}).items():
            v[f"__AGENT_DELAY_{ag}"] = d
        if abandon_after is not None:
            v["ABANDON_AFTER"] = abandon_after
        if record:
            v["RECORD"] = 1
            if rec_name:
                v["REC_NAME"] = rec_name
        if phone_say:
            v["PHONE_SAY"] = self.sound_path_in_root(phone_say)
            if phone_say_wait is not None:
                v["PHONE_SAY_WAIT"] = phone_say_wait
        if agent_say:
            v["__AGENT_SAY"] = self.sound_path_in_root(agent_say)
            if agent_say_wait is not None:
                v["__AGENT_SAY_WAIT"] = agent_say_wait
        if queue_opts:
            v["QUEUE_OPTS"] = queue_opts  # e.g. "t": the agent may transfer (Atxfer)
        v.update(extra_vars or {})
        return ami.originate(
            f"Local/{exten}@customer/n",
            callerid=f'"Customer" <{callerid}>',
            variables=v,
            context="phone",
            exten="s",
        )

    def originate_direct_call(
        self,
        ami: AMI,
        *,
        target: str = "agent1",
        callerid: str = "13800138000",
        agent_delay: float = 2,
        agent_talk: float = 5,
        record: bool = False,
        extra_vars: dict[str, object] | None = None,
    ) -> AMIMessage:
        v: dict[str, object] = {
            "__AGENT_DELAY": agent_delay,
            "__AGENT_TALK": agent_talk,
            "DIAL_TARGET": target,
        }
        if record:
            v["RECORD"] = 1
        v.update(extra_vars or {})
        return ami.originate(
            "Local/direct@customer/n",
            callerid=f'"Customer" <{callerid}>',
            variables=v,
            context="phone",
            exten="s",
        )


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


__all__ = ["AMI", "AMIError", "AMIMessage", "Asterisk", "build_root", "default_root", "wait_for"]
