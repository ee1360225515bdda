"""Alembic, driven from code: the migrations ship inside the package, so no alembic.ini in
the current directory is needed (or consulted) when an installed sshrec upgrades an index.

``schema/alembic.ini`` exists only for developers writing new revisions::

    alembic -c schema/alembic.ini -x db=sqlite:///tmp/dev.db revision -m "..."
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


class UnknownRevision(RuntimeError):
    def __init__(self, revision: str) -> None:
        super().__init__(f"unknown schema revision {revision}")
        self.revision = revision


def config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head


def upgrade(connection: sa.Connection, target: str = "head") -> None:
    """Upgrade inside the caller's transaction (which holds the migration lock)."""
    current = (
        connection.dialect.has_table(connection, "alembic_version")
        and connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    )
    script = ScriptDirectory.from_config(config())
    if current and current not in {rev.revision for rev in script.walk_revisions()}:
        raise UnknownRevision(current)
    try:
        command.upgrade(config(connection), target)
    except CommandError as exc:
        raise RuntimeError(f"schema migration failed: {exc}") from None


def downgrade(connection: sa.Connection, target: str) -> None:
    command.downgrade(config(connection), target)
