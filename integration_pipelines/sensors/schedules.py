"""Polling schedules: one per connector, from its file, over its active connections."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.resources.dagster_resources import IntegrationDatabase


def build_poll_schedule(
    connector: LoadedConnector, job: UnresolvedAssetJobDefinition
) -> dg.ScheduleDefinition:
    partitions = f"{connector.name}_connections"

    @dg.schedule(
        name=f"{connector.name}_poll",
        job=job,
        cron_schedule=connector.spec.schedule.cron,
        execution_timezone=connector.spec.schedule.timezone,
        description=f"Poll {connector.spec.title} for every active {connector.name} connection.",
    )
    def _poll(context: dg.ScheduleEvaluationContext, database: IntegrationDatabase) -> list[dg.RunRequest]:
        known = set(context.instance.get_dynamic_partitions(partitions))
        active = [
            c.id
            for c in ConnectionStore(database.engine()).all(connector=connector.name)
            if c.status == "active" and c.id in known
        ]
        stamp = context.scheduled_execution_time.isoformat()
        return [dg.RunRequest(partition_key=cid, run_key=f"{cid}@{stamp}") for cid in active]

    return _poll
