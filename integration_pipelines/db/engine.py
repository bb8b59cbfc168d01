"""Engines for the integration database, the same code on SQLite and PostgreSQL."""

import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_HOME = Path(".integration")


def default_database_url() -> str:
    """`INTEGRATION_DATABASE_URL`, else an SQLite file under `.integration/`."""
    url = os.environ.get("INTEGRATION_DATABASE_URL")
    if url:
        return url
    DEFAULT_HOME.mkdir(exist_ok=True)
    return f"sqlite:///{(DEFAULT_HOME / 'ats.db').resolve()}"


def normalise_url(url: str) -> str:
    """Pin the psycopg2 driver: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def create_db_engine(url: str | None = None) -> sa.Engine:
    """An engine with SQLite made safe for several writers (WAL, FK checks, busy timeout)."""
    url = normalise_url(url or default_database_url())
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # executemany UPDATEs (changed records) go in pages of statements, not one round trip each
    return sa.create_engine(url, pool_pre_ping=True, executemany_mode="values_plus_batch")


def alembic_config(engine: sa.Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection_url"] = engine.url
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest migration; safe to call on every start."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
