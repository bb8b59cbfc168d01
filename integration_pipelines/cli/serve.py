"""`integration-pipelines serve`: run the webhook receiver under uvicorn."""

import os

import click

from integration_pipelines.cli.common import DATABASE_OPTION
from integration_pipelines.db.engine import create_db_engine, default_database_url, migrate

APP_FACTORY = "integration_pipelines.webhooks.receiver:app_from_env"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8800, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="uvicorn processes. One process handles thousands of events/s (group commit); on SQLite "
    "more processes contend for its single writer lock.",
)
@DATABASE_OPTION
@click.option(
    "--public-base-url",
    envvar="INTEGRATION_WEBHOOK_PUBLIC_URL",
    default=None,
    help="Scheme://host[:port] partners call, when a proxy is in front (URL-signing partners need it).",
)
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="uvicorn access log.")
def serve(
    host: str,
    port: int,
    workers: int,
    database_url: str | None,
    public_base_url: str | None,
    access_log: bool,
) -> None:
    """Receive partner webhooks on POST /webhooks/<connection_id> and store them in the inbox."""
    import uvicorn

    url = database_url or default_database_url()
    engine = create_db_engine(url)
    try:
        migrate(engine)  # once, here: the workers only read and insert
    finally:
        engine.dispose()
    # the workers (separate processes) read their configuration from the environment
    os.environ["INTEGRATION_DATABASE_URL"] = url
    if public_base_url:
        os.environ["INTEGRATION_WEBHOOK_PUBLIC_URL"] = public_base_url
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"webhook receiver listening on http://{shown}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}): POST /webhooks/<connection_id>, GET /health"
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        proxy_headers=True,
        http="httptools",  # a dependency: never a silent fallback to the slower h11 parser
    )
