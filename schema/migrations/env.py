"""Alembic environment for the sshrec index.

sshrec runs migrations itself (sshrec.schema.migrate) and hands over a connection that is
already inside a locked transaction. Run by hand, the database comes from ``-x db=URL`` or
the usual settings (SSHREC_DB, SSHREC_HOME).
"""

from __future__ import annotations

from alembic import context
from sshrec.schema.tables import metadata

config = context.config


def run_with(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    from sshrec.schema.db import open_engine, writing
    from sshrec.schema.settings import load_settings

    url = context.get_x_argument(as_dictionary=True).get("db") or load_settings().db_url
    with writing(open_engine(url)) as connection:
        run_with(connection)


if context.is_offline_mode():
    raise SystemExit("sshrec migrations run online only (they inspect existing rows)")
run_online()
