"""Keeps each connector's dynamic partitions in step with the connections table."""

import dagster as dg

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.resources.dagster_resources import IntegrationDatabase


def partition_requests(
    connectors: list[LoadedConnector], wanted: dict[str, set[str]], current: dict[str, set[str]]
) -> list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]:
    """Add partitions for new connections and delete those of removed ones."""
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    for connector in connectors:
        name = f"{connector.name}_connections"
        have, want = current.get(name, set()), wanted.get(connector.name, set())
        if want - have:
            requests.append(dg.AddDynamicPartitionsRequest(name, sorted(want - have)))
        if have - want:
            requests.append(dg.DeleteDynamicPartitionsRequest(name, sorted(have - want)))
    return requests


def build_connections_sensor(connectors: list[LoadedConnector]) -> dg.SensorDefinition:
    @dg.sensor(
        name="connections_to_partitions",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a partition for every new connection and removes those of deleted ones.",
    )
    def connections_to_partitions(
        context: dg.SensorEvaluationContext, database: IntegrationDatabase
    ) -> dg.SensorResult | dg.SkipReason:
        wanted: dict[str, set[str]] = {}
        for connection in ConnectionStore(database.engine()).all():
            wanted.setdefault(connection.connector, set()).add(connection.id)
        current = {
            f"{c.name}_connections": set(context.instance.get_dynamic_partitions(f"{c.name}_connections"))
            for c in connectors
        }
        requests = partition_requests(connectors, wanted, current)
        if not requests:
            return dg.SkipReason("partitions match the connections table")
        return dg.SensorResult(dynamic_partitions_requests=requests)

    return connections_to_partitions
