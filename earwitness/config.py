"""The one place settings live.

Every value comes from (highest first) keyword arguments, ``EARWITNESS_*``
environment variables, an optional TOML file (``EARWITNESS_CONFIG`` or
``./earwitness.toml``) and the defaults below. The defaults are the embedded
set-up: SQLite in WAL mode under the data dir, an in-process worker, the
bundled Whisper model, no PBX.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from earwitness import config_checks
from earwitness.errors import ConfigError

WorkerMode = Literal["inline", "celery", "off"]


def _host_zone() -> str:
    """The host's IANA zone name (tzlocal reads TZ, /etc/timezone, /etc/localtime)."""
    from earwitness.timezones import host_zone_name

    return host_zone_name()


def _toml_path() -> Path | None:
    explicit = os.environ.get("EARWITNESS_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"EARWITNESS_CONFIG points to {path}, which is not a readable file")
        return path
    local = Path("earwitness.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    """All configuration of one earwitness process."""

    model_config = SettingsConfigDict(
        env_prefix="EARWITNESS_", extra="forbid", validate_default=True
    )

    data_dir: Path = Path("./earwitness-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file in data_dir"
    )

    # PBX: no host configured means no call tracker is started.
    ami_host: str | None = None
    ami_port: int = Field(default=5038, ge=1, le=65535)
    ami_user: str | None = None
    ami_secret: SecretStr | None = None
    ami_auth: Literal["plain", "md5"] = Field(
        default="plain", description="md5: Challenge/Key login, the secret never crosses the wire"
    )
    ami_tls: bool = Field(
        default=False, description="TLS to AMI (manager.conf tlsenable); ami_port = its port"
    )
    ami_tls_ca_path: Path | None = Field(
        default=None, description="PEM CA or the PBX's own certificate; default: the system's"
    )
    ami_tls_server_name: str | None = Field(
        default=None, description="name the PBX certificate must carry; default: ami_host"
    )
    ami_ping_interval_s: float = Field(default=20.0, gt=0)
    ami_record_calls: bool = True
    ami_recording_dir: Path | None = Field(
        default=None,
        description="this host's path of the PBX's monitor dir (where MixMonitor files land)",
    )
    ami_queue_log_path: Path | None = Field(
        default=None,
        description="this host's path of the PBX's queue_log: fills AMI gaps after a reconnect",
    )

    # Speech models: a CTranslate2 directory or a faster-whisper model name.
    whisper_model: str | None = Field(default=None, description="default: bundled tiny.en")
    whisper_model_multilingual: str | None = Field(
        default=None, description="default: bundled multilingual base (joined into data_dir)"
    )
    whisper_device: str = "cpu"
    whisper_compute_type: str = "int8"
    # issue 17: a stereo call's channels are independent streams; decoding them at the same
    # time on one shared model (this many CTranslate2 workers, the cores split between them)
    # fills cores that one beam search leaves idle. Same words, times and probabilities as
    # one after the other (tests/test_transcription_batched.py); costs ~250 MB more peak
    # memory. 1 = one channel after the other on the single-stream model.
    whisper_num_workers: int = Field(
        default=2, ge=1, le=16, description="channels of one call decoded at the same time"
    )
    # pyannote backend (extra [pyannote]): a local pipeline directory, or a hub name + token.
    pyannote_pipeline: str | None = Field(
        default=None, description="pyannote pipeline directory (config.yaml) or hub name"
    )
    pyannote_token: SecretStr | None = Field(
        default=None, description="Hugging Face token for a hub pipeline; default: HF_TOKEN"
    )

    worker_mode: WorkerMode = "inline"
    worker_threads: int = Field(default=1, ge=0, le=64)
    job_lease_s: float = Field(default=60.0, gt=0)
    job_poll_s: float = Field(default=0.5, gt=0)
    job_modules: list[str] = Field(
        default_factory=list, description="extra modules that register job handlers"
    )
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    celery_queue_prefix: str = Field(
        default="earwitness.",
        description="Celery queue of a job kind: this prefix + the kind's first word "
        "(earwitness.transcribe, earwitness.search, ...), unless celery_routes names one",
    )
    celery_routes: dict[str, str] = Field(
        default_factory=dict, description="job kind -> Celery queue name (overrides the prefix)"
    )
    celery_redispatch_s: float = Field(
        default=30.0,
        gt=0,
        description="a runnable job with no broker message sent this long is sent again",
    )
    recording_wait_minutes: float = Field(
        default=10.0,
        gt=0,
        description="how long after hang-up the PBX recording file is waited for before the "
        "recording is marked missing",
    )
    leader_check_s: float = Field(
        default=1.0, gt=0, description="how often a standby tracker tries the leader lock"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_mb: float = Field(default=200.0, gt=0)
    upload_decode_timeout_s: float = Field(
        default=120.0, gt=0, description="an uploaded file's decode check runs at most this long"
    )
    upload_decode_memory_mb: int = Field(
        default=1536, ge=384, description="address-space limit of the upload decode child"
    )
    upload_idle_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="longest pause inside a request body (408)"
    )
    upload_min_bytes_per_s: float = Field(
        default=1024.0, gt=0, description="slowest average body rate after the idle grace (408)"
    )
    bootstrap_api_key: SecretStr | None = Field(
        default=None, description="on an empty user table: the key of a new admin (automation)"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values served (DNS-rebinding defence); default: localhost "
        "names plus the bound host",
    )
    session_hours: float = Field(default=12.0, gt=0, description="browser session lifetime")
    login_token_minutes: float = Field(
        default=60.0, gt=0, description="lifetime of a one-time login link"
    )
    login_attempts: int = Field(
        default=5, ge=1, description="failed logins per username or address per window"
    )
    login_window_s: float = Field(default=300.0, gt=0)

    demo: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: load demo data when the database has no calls"
    )
    case_policy_file: Path | None = Field(
        default=None, description="TOML with deadlines/categories; default: the seeds' values"
    )
    qa_rules_file: Path | None = Field(
        default=None, description="QA rules TOML; default: the shipped zh/en rules by language"
    )
    sla_rings: int = Field(default=3, ge=1, le=100)
    sla_cadence: str = "cn"
    timezone: str = Field(
        default_factory=lambda: _host_zone(),
        description="IANA zone for days, weeks, case numbers and times shown; default: the host's",
    )

    # Custody signing: the private key lives outside the database it protects.
    custody_key_path: Path | None = Field(
        default=None,
        description="Ed25519 PEM signing the custody log; default <data_dir>/keys/"
        "custody-ed25519.pem (created 0600 on first use)",
    )
    tsa_url: str | None = Field(
        default=None, description="RFC 3161 timestamp authority; unset: no trusted timestamps"
    )
    tsa_ca_path: Path | None = Field(
        default=None, description="PEM CA certificate(s) the TSA's tokens must chain to"
    )
    tsa_timeout_s: float = Field(default=30.0, gt=0)
    # follow-ups (issue 21): the dialplan contexts of docs/README "Follow-up"
    followup_dial_context: str = Field(
        default="earwitness-followup-out",
        description="context where exten <number> dials the customer (e.g. over the trunk)",
    )
    followup_survey_context: str = Field(
        default="earwitness-survey", description="context that asks for a digit 1-5"
    )
    followup_agent_channel: str = Field(
        default="PJSIP/{agent}", description="the agent's phone for call-backs; {agent}"
    )
    followup_caller_id: str | None = Field(
        default=None, description='caller ID shown to the customer, e.g. "Hotline" <95000>'
    )
    followup_prompt: str = Field(
        default="earwitness/follow-up-question", description="survey prompt (sound, no ext.)"
    )
    sms_gateway_url: str | None = Field(default=None, description="HTTP SMS gateway; unset: none")
    sms_gateway_token: SecretStr | None = None
    sms_template: str = Field(
        default="About your complaint {case}: how satisfied are you with how it was handled? "
        "Reply with one digit, 1 (not at all) to 5 (very).",
    )
    sms_reply_secret: SecretStr | None = Field(
        default=None, description="the gateway sends it as X-Earwitness-Gateway-Secret"
    )
    sms_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        from earwitness.timezones import zone_named

        zone_named(value)  # raises ValueError naming the zone
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value

    # -- issue 19: every setting checked at load (checks live in config_checks) ---------

    @field_validator("sla_cadence")
    @classmethod
    def _known_cadence(cls, value: str) -> str:
        from earwitness.telephony.rings import Cadence

        return Cadence.for_country(value).name  # ValueError lists the known names

    @field_validator("tsa_url", "sms_gateway_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else config_checks.url(value, ("http", "https"))

    @field_validator("celery_broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        return config_checks.url(value, config_checks.BROKER_SCHEMES)

    @field_validator("case_policy_file", "qa_rules_file", "tsa_ca_path", "ami_tls_ca_path")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        return None if value is None else config_checks.readable_file(value)

    @field_validator("ami_recording_dir")
    @classmethod
    def _existing_dir(cls, value: Path | None) -> Path | None:
        return None if value is None else config_checks.existing_dir(value)

    @field_validator("data_dir")
    @classmethod
    def _creatable_dir(cls, value: Path) -> Path:
        return config_checks.creatable_dir(value)

    @field_validator("custody_key_path")
    @classmethod
    def _creatable_file(cls, value: Path | None) -> Path | None:
        return None if value is None else config_checks.creatable_file(value)

    @model_validator(mode="after")
    def _extras_installed(self) -> Settings:
        config_checks.extras_installed(self.database_url, self.worker_mode, self.celery_broker_url)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _toml_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'earwitness.db').resolve()}"

    @property
    def ami_enabled(self) -> bool:
        return bool(self.ami_host)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def custody_key_file(self) -> Path:
        return self.custody_key_path or self.custody_key_dir / "custody-ed25519.pem"

    @property
    def custody_key_dir(self) -> Path:
        """Public keys, the signed chain head, the verify checkpoint and timestamp tokens."""
        return self.data_dir / "keys"

    @property
    def trusted_hosts(self) -> list[str]:
        """Configured hosts, else localhost names plus the bound host (and this machine's
        names when bound to every interface)."""
        if self.allowed_hosts:
            return list(self.allowed_hosts)
        hosts = ["localhost", "127.0.0.1", "::1", "[::1]"]
        if self.host in ("0.0.0.0", "::", ""):
            import socket

            hosts += [socket.gethostname(), socket.getfqdn()]
        elif self.host not in hosts:
            hosts.append(self.host)
        return list(dict.fromkeys(hosts))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """``sla_cadence (EARWITNESS_SLA_CADENCE): `` — the name in the file and in the environment;
    empty for a check over several settings, whose message names them itself."""
    if not loc:
        return ""
    name = ".".join(str(p) for p in loc)
    return f"{name} (EARWITNESS_{str(loc[0]).upper()}): "


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning pydantic's multi-line report into one ConfigError line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_setting_name(err['loc'])}{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({problems})") from None
    except (OSError, ValueError) as exc:  # unreadable/invalid TOML
        raise ConfigError(f"cannot read configuration: {exc}") from None
