"""Schema upgrades with Alembic, run by the app and the CLI on start.

The configuration is built in code (no alembic.ini to find) so an installed
package upgrades any database it is pointed at.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

HERE = Path(__file__).parent


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; safe to call on every start (no-op when current)."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The applied revision(s), comma-joined when parallel branches are both applied."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


def head_revision(engine: Engine) -> str | None:
    heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    return ",".join(sorted(heads)) or None
