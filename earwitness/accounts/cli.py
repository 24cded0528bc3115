"""``earwitness users ...`` and the API-key half of ``earwitness keys ...``.

Passwords are read from standard input (``--password-stdin``), never from the
command line, where they would land in shell history and ``ps``. An API key's secret
is printed once, at creation.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from earwitness.errors import BadInput
from earwitness.runtime import configured_runtime

console = Console()
users_app = typer.Typer(
    help="Local users: add, list, set role or password, disable.", no_args_is_help=True
)


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise BadInput("no password on standard input")
    return password


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="username")],
    role: Annotated[str, typer.Option(help="agent, lead, qa, investigator or admin")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    agent: Annotated[
        str | None, typer.Option(help="PBX agent (queue member interface or name): own calls")
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="a lead's queue (repeatable); none: all")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="shown instead of the name")] = None,
) -> None:
    """Add a user (without --password-stdin: no password, log in with `users login-url`)."""
    from earwitness.accounts.users import create_user

    password = _read_password() if password_stdin else None
    with configured_runtime() as runtime, runtime.db.session() as session:
        user = create_user(
            session,
            name,
            role,
            password=password,
            display_name=display_name,
            pbx_agent=agent,
            queues=queue or (),
        )
        console.print(f"user [bold]{user.username}[/] ({user.role}) added, id {user.id}")


@users_app.command("list")
def users_list() -> None:
    """Every user: role, active, password set, linked PBX agent, queues."""
    from earwitness.accounts.users import list_users

    with configured_runtime() as runtime, runtime.db.session() as session:
        table = Table("id", "username", "role", "active", "password", "agent", "queues")
        for u in list_users(session):
            table.add_row(
                str(u.id),
                u.username,
                u.role,
                "yes" if u.active else "disabled",
                "set" if u.password_hash else "-",
                u.pbx_agent or "-",
                ", ".join(u.queues or []) or "all" if u.role == "lead" else "-",
            )
        console.print(table)


@users_app.command("set-role")
def users_set_role(
    name: Annotated[str, typer.Argument()], role: Annotated[str, typer.Argument()]
) -> None:
    """Change a user's role (takes effect on their next request)."""
    from earwitness.accounts.users import get_user, set_role

    with configured_runtime() as runtime, runtime.db.session() as session:
        set_role(session, get_user(session, name), role)
        console.print(f"{name} is now {role}")


@users_app.command("set-password")
def users_set_password(
    name: Annotated[str, typer.Argument()],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Set a user's password, read from standard input."""
    from earwitness.accounts.users import get_user, set_password

    if not password_stdin:
        raise BadInput("pass the password on standard input with --password-stdin")
    password = _read_password()
    with configured_runtime() as runtime, runtime.db.session() as session:
        set_password(session, get_user(session, name), password)
        console.print(f"password of {name} set")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Disable a user: their sessions and API keys stop working at once."""
    from earwitness.accounts.users import get_user, set_active

    with configured_runtime() as runtime, runtime.db.session() as session:
        set_active(session, get_user(session, name), False)
        console.print(f"{name} disabled; sessions ended, keys revoked")


@users_app.command("enable")
def users_enable(name: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled user again (their old keys stay revoked)."""
    from earwitness.accounts.users import get_user, set_active

    with configured_runtime() as runtime, runtime.db.session() as session:
        set_active(session, get_user(session, name), True)
        console.print(f"{name} enabled")


@users_app.command("login-url")
def users_login_url(name: Annotated[str, typer.Argument()]) -> None:
    """Print a single-use, expiring login URL for a user."""
    from earwitness.accounts.sessions import issue_login_token
    from earwitness.accounts.users import get_user

    with configured_runtime() as runtime:
        with runtime.db.session() as session:
            token = issue_login_token(
                session, get_user(session, name), runtime.settings.login_token_minutes
            )
        console.print(
            login_url(runtime.settings.host, runtime.settings.port, token), soft_wrap=True
        )


def login_url(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/login?token={token}"


def keys_create(
    name: Annotated[str, typer.Argument(help="what the key is for")],
    user: Annotated[str, typer.Option(help="the key's owner (username)")],
) -> None:
    """Create an API key; the secret is printed this once."""
    from earwitness.accounts.keys import create_key
    from earwitness.accounts.users import get_user

    with configured_runtime() as runtime:
        with runtime.db.session() as session:
            row, secret = create_key(session, get_user(session, user), name)
            key_id = row.id
        console.print(f"API key {key_id} for {user} (shown once, store it now):", highlight=False)
        sys.stdout.write(secret + "\n")


def keys_list() -> None:
    """API keys: id, prefix, user, created, last used, revoked."""
    from earwitness.accounts.keys import list_keys

    def when(value: object) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"

    with configured_runtime() as runtime, runtime.db.session() as session:
        table = Table("id", "name", "prefix", "user", "created", "last used", "revoked")
        for k in list_keys(session):
            table.add_row(
                str(k.id),
                k.name,
                k.prefix + "…",
                k.user.username,
                when(k.created_at),
                when(k.last_used_at),
                when(k.revoked_at),
            )
        console.print(table)


def keys_revoke(key_id: Annotated[int, typer.Argument()]) -> None:
    """Revoke an API key: the next request with it gets 401."""
    from earwitness.accounts.keys import revoke_key

    with configured_runtime() as runtime:
        with runtime.db.session() as session:
            revoke_key(session, key_id)
        console.print(f"API key {key_id} revoked")


def register(app: typer.Typer, keys_app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    keys_app.command("create")(keys_create)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
