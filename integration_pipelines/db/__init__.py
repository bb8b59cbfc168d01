"""The integration database: engine creation and migrations (SQLite or PostgreSQL)."""

from integration_pipelines.db.engine import create_db_engine, migrate

__all__ = ["create_db_engine", "migrate"]
