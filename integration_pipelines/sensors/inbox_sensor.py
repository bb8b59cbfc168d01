"""Turns pending inbox events into runs: one run per connection with events waiting.

The cursor remembers, per connection, the newest event a run was requested for and when.
A connection gets a new run when newer events arrive, or again after `RETRY_SECONDS` if
its events are still pending (the last run failed or is slow): none is left behind, and
since events are marked applied with the rows they wrote, none is applied twice.
"""

import json
import time

import dagster as dg
import sqlalchemy as sa
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from integration_pipelines.canonical.tables import connections, inbox
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.resources.dagster_resources import IntegrationDatabase

RETRY_SECONDS = 120


def pending_by_connection(engine: sa.Engine, connector: str) -> dict[str, int]:
    """connection id -> newest pending event id, for the connector's connections."""
    query = (
        sa.select(inbox.c.connection_id, sa.func.max(inbox.c.id))
        .join(connections, connections.c.id == inbox.c.connection_id)
        .where(connections.c.connector == connector, inbox.c.status == "pending")
        .group_by(inbox.c.connection_id)
    )
    with engine.connect() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(query)}


def plan_runs(
    pending: dict[str, int], cursor: dict[str, list], known: set[str], now: float
) -> tuple[list[dg.RunRequest], dict[str, list]]:
    """Run requests for connections with new (or long-pending) events, and the next cursor."""
    requests, next_cursor = [], {}
    for connection_id, newest in sorted(pending.items()):
        if connection_id not in known:
            continue  # its partition is added by the connections sensor first
        last_id, last_at, attempt = cursor.get(connection_id, [0, 0.0, 0])
        if newest > last_id:
            attempt = 0
        elif now - last_at < RETRY_SECONDS:
            next_cursor[connection_id] = [last_id, last_at, attempt]
            continue
        else:
            attempt += 1
        requests.append(
            dg.RunRequest(
                partition_key=connection_id,
                run_key=f"inbox:{connection_id}:{newest}:{attempt}",
                tags={"trigger": "webhook"},
            )
        )
        next_cursor[connection_id] = [newest, now, attempt]
    return requests, next_cursor


def build_inbox_sensor(connector: LoadedConnector, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    partitions = f"{connector.name}_connections"

    @dg.sensor(
        name=f"{connector.name}_inbox",
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Applies {connector.spec.title} webhook events as they arrive in the inbox.",
    )
    def _inbox(context: dg.SensorEvaluationContext, database: IntegrationDatabase) -> dg.SensorResult:
        pending = pending_by_connection(database.engine(), connector.name)
        cursor = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(partitions))
        requests, next_cursor = plan_runs(pending, cursor, known, time.time())
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(next_cursor))

    return _inbox
