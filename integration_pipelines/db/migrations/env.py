"""Alembic environment: runs on the connection handed over by `db.migrate`."""

from alembic import context

from integration_pipelines.canonical.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` CLI use: build an engine from INTEGRATION_DATABASE_URL
    from integration_pipelines.db.engine import create_db_engine

    engine = create_db_engine()
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
