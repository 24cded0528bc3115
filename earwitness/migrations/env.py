"""Alembic environment: runs online against the engine handed over in ``config.attributes``.

Upgrades run under a cross-process lock (PostgreSQL advisory lock, SQLite file lock)
taken before the current revision is read, so N processes starting at once upgrade
once: the first migrates, the others then find the schema current.
"""

from __future__ import annotations

from alembic import context

from earwitness.locks import migration_lock
from earwitness.models import Base
from earwitness.models.search import include_name

config = context.config
engine = config.attributes["engine"]

with migration_lock(engine) as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    context.run_migrations()
