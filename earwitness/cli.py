"""The ``earwitness`` command line (Typer + Rich).

Every failure a user can cause (bad setting, unreachable database, bad file)
ends as one red line and exit status 2 — never a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from earwitness.config import Settings, load_settings
from earwitness.db import redact_url
from earwitness.errors import ConfigError, EarwitnessError
from earwitness.logs import configure_logging
from earwitness.runtime import Runtime, settle_process

app = typer.Typer(
    help="earwitness: complaint call evidence — SLA, recordings, transcripts, cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    return load_settings()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    demo: Annotated[
        str | None, typer.Option(help="auto|always|never: load demo data on start")
    ] = None,
) -> None:
    """Run the API, web UI, in-process worker and (if configured) the PBX tracker."""
    import uvicorn

    from earwitness.api import create_app

    overrides: dict[str, object] = {}
    if demo is not None:
        overrides["demo"] = demo
    if host is not None:
        overrides["host"] = host  # the bound host is also a trusted Host header
    if port is not None:
        overrides["port"] = port
    settings = load_settings(**overrides) if overrides else _settings()
    configure_logging()
    runtime = Runtime.open(settings)
    try:
        _refuse_open_bind_without_password(runtime)
        runtime.start_worker()
        _maybe_load_demo(runtime)
        runtime.start_services()
        console.print(
            f"[bold green]earwitness[/] on [link]http://{settings.host}:{settings.port}[/link]  "
            f"(database {redact_url(runtime.db.url)}, worker {settings.worker_mode})"
        )
        _print_first_login_url(runtime)
        api = create_app(runtime=runtime)
        settle_process()
        uvicorn.run(
            api,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,  # our own request log line carries the request id
        )
    finally:
        runtime.close()


def _refuse_open_bind_without_password(runtime: Runtime) -> None:
    """Beyond loopback, a login link on the console is not enough: a password must exist."""
    from earwitness.accounts.bootstrap import any_password_user, is_loopback

    host = runtime.settings.host
    if is_loopback(host):
        return
    with runtime.db.session() as session:
        if any_password_user(session):
            return
    raise ConfigError(
        f"refusing to listen on {host}: no user has a password yet; start on 127.0.0.1 "
        "and follow the login link, or run `earwitness users set-password admin "
        "--password-stdin` first"
    )


def _print_first_login_url(runtime: Runtime) -> None:
    """Jupyter's convention: while no user has a password, a one-time login URL."""
    from earwitness.accounts.bootstrap import first_start_login_token
    from earwitness.accounts.cli import login_url

    settings = runtime.settings
    with runtime.db.session() as session:
        issued = first_start_login_token(session, settings.login_token_minutes)
    if issued is None:
        return
    username, token = issued
    minutes = int(settings.login_token_minutes)
    console.print(
        f"\n  No user has a password yet. Log in as [bold]{username}[/] (single use, "
        f"valid {minutes} min) at:\n\n    {login_url(settings.host, settings.port, token)}\n",
        soft_wrap=True,
        highlight=False,
    )


def _maybe_load_demo(runtime: Runtime) -> None:
    from earwitness.demo.loader import demo_wanted, load_demo

    if demo_wanted(runtime):
        load_demo(runtime, console=console)


@app.command()
def demo(
    wait: Annotated[bool, typer.Option(help="wait for the pipeline jobs to finish")] = True,
) -> None:
    """Build the demo data (synthesised calls, GPX track, case) and run it through the pipeline."""
    from earwitness.demo.loader import load_demo

    configure_logging("WARNING")
    runtime = Runtime.open(_settings())
    try:
        runtime.start_worker()
        summary = load_demo(runtime, console=console, wait=wait)
        console.print(summary)
    finally:
        runtime.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest revision (also done on every start)."""
    from earwitness.migrations import current_revision

    runtime = Runtime.open(_settings())
    try:
        console.print(
            f"schema at revision [bold]{current_revision(runtime.db.engine)}[/] "
            f"on {redact_url(runtime.db.url)}"
        )
    finally:
        runtime.close()


@app.command()
def worker(
    threads: Annotated[int | None, typer.Option(help="worker threads")] = None,
    queues: Annotated[
        str | None,
        typer.Option(help="Celery mode: comma-separated queues to consume (default: all)"),
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery mode: threads|prefork|solo")] = "threads",
) -> None:
    """Run only the job worker (for extra machines or a separate process).

    With EARWITNESS_WORKER_MODE=celery this is a Celery worker (same handlers, claims
    through the job table); otherwise the table-polling worker.
    """
    from earwitness.jobs.worker import Worker

    settings = _settings()
    configure_logging()
    if settings.worker_mode == "celery":
        from earwitness.jobs.celery_app import make_app, worker_argv

        Runtime.open(settings).close()  # schema current before the first task
        names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
        concurrency = threads or max(1, settings.worker_threads)
        make_app(settings).worker_main(
            worker_argv(settings, queues=names, concurrency=concurrency, pool=pool)
        )
        return
    runtime = Runtime.open(settings)
    runner = Worker(
        runtime.job_env(),
        threads=threads or max(1, settings.worker_threads),
        lease_s=settings.job_lease_s,
        poll_s=settings.job_poll_s,
        extra_modules=settings.job_modules,
    )
    console.print(f"worker {runner.identity} handling {', '.join(runner.kinds)}")
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


@app.command()
def tracker() -> None:
    """Run only the PBX call tracker, under the leader lock: one tracker per PBX across all
    processes; this one stands by until it wins the lock, then tracks (and resyncs)."""
    import signal
    import threading

    settings = _settings()
    configure_logging()
    if not settings.ami_enabled:
        raise ConfigError("no PBX configured: set EARWITNESS_AMI_HOST, _USER and _SECRET")
    runtime = Runtime.open(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runtime.start_services()
        settle_process()
        console.print(f"tracker for {settings.ami_host}:{settings.ami_port} (standby until leader)")
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


from earwitness import cli_telephony  # noqa: E402  (commands register on the app above)

cli_telephony.register(app)

from earwitness.transcription import cli as cli_transcription  # noqa: E402

cli_transcription.register(app)

from earwitness.cases import cli as cases_cli  # noqa: E402
from earwitness.evidence import cli as evidence_cli  # noqa: E402

evidence_cli.register(app)
from earwitness.accounts import cli as accounts_cli  # noqa: E402

accounts_cli.register(app, evidence_cli.keys_app)
app.add_typer(evidence_cli.keys_app, name="keys")
from earwitness.search import cli as search_cli  # noqa: E402

search_cli.register(app)
cases_cli.register(app)

from earwitness.qa import cli as qa_cli  # noqa: E402

qa_cli.register(app)


def _usage_error(exc: Exception) -> int:
    """One red line for any usage error (bad option or value, missing argument, unknown
    command) of any command, naming where help is; returns the exit status (2).

    Typer raises its own copy of Click's exceptions (``typer._click``; plain ``click``
    in older releases), so they are recognised by what they carry, not by class."""
    from rich.markup import escape

    message = escape(" ".join(exc.format_message().split()))  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    hint = escape(f" (see '{ctx.command_path} --help')") if ctx is not None else ""
    err_console.print(f"[bold red]error:[/] {message}{hint}", highlight=False, soft_wrap=True)
    return 2


def _is_usage_error(exc: Exception) -> bool:
    return hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)


def main() -> None:
    """Console-script entry point: one clean line per user-facing error."""
    try:
        code = app(standalone_mode=False)
    except EarwitnessError as exc:
        err_console.print(f"[bold red]error:[/] {exc.detail}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())  # a group without a subcommand: its help, as Click does
            sys.exit(2)
        if _is_usage_error(exc):
            sys.exit(_usage_error(exc))
        raise
    # Without standalone mode click returns a command's typer.Exit code instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
