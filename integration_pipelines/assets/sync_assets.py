"""Dagster assets generated from connector files.

For each connector: the partner's endpoints as source assets, one sync asset per inbound
stream (partitioned by the connector's connections), and lineage into the ATS entities
each stream writes. The asset graph reads: partner stream -> sync -> ATS entity.
"""

from collections.abc import Callable
from functools import partial

import dagster as dg

from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Stream
from integration_pipelines.resources.dagster_resources import (
    CredentialVaultResource,
    IntegrationDatabase,
    PartnerApi,
)
from integration_pipelines.resources.errors import PartnerError
from integration_pipelines.sync.runner import SyncReport
from integration_pipelines.sync.service import apply_webhook_events, sync_stream

ATS_GROUP = "ats"

ENTITY_DESCRIPTIONS = {
    "candidate": "People the agency places: contact details, filled in by recruiters and CV parsing.",
    "candidate_document": "CV files uploaded to the ATS, waiting to be parsed.",
    "parsed_resume": "Structured CV data returned by a CV parser, one per document and parser.",
    "job": "Job orders / requisitions, mostly pulled from clients' vendor management systems.",
    "submission": "A candidate put forward for a job.",
    "placement": "A candidate placed on a job (assignment / work order).",
}


def partitions_for(connector: LoadedConnector) -> dg.DynamicPartitionsDefinition:
    """One partition per connection of this connector (kept in step by the connections sensor)."""
    return dg.DynamicPartitionsDefinition(name=f"{connector.name}_connections")


def sync_asset_key(connector: str, stream: str) -> dg.AssetKey:
    return dg.AssetKey([connector, stream])


def partner_source_key(connector: str, stream: str) -> dg.AssetKey:
    return dg.AssetKey(["partners", connector, stream])


def ats_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey([ATS_GROUP, entity])


def entities_written(stream: Stream) -> list[str]:
    """The ATS entities a stream changes: its own, plus candidates filled from parsed CVs."""
    return [stream.entity, "candidate"] if stream.entity == "parsed_resume" else [stream.entity]


def _partner_source(connector: LoadedConnector, name: str, stream: Stream) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=partner_source_key(connector.name, name),
        group_name=connector.name,
        description=f"{connector.spec.title}: {stream.request.method} {stream.request.path}",
        kinds={"api"},
        metadata={"docs": connector.spec.docs or "", "base_url": connector.spec.base_url},
    )


def lookup_deps(connector: LoadedConnector, stream: Stream) -> list[dg.AssetKey]:
    """Streams of the same connector that write the entities this stream looks up (sync them first)."""
    wanted = {m.lookup for m in stream.mapping.values() if m.lookup}
    return [
        sync_asset_key(connector.name, other)
        for other, s in connector.spec.inbound_streams().items()
        if s.entity in wanted and s is not stream
    ]


def _metadata(report: SyncReport) -> dict:
    return {
        "records": report.records,
        "written": report.written,
        "inserted": report.counts.inserted,
        "updated": report.counts.updated,
        "unchanged": report.counts.unchanged,
        "stale": report.counts.stale,
        "conflicts": report.counts.conflicts,
        "rejected": report.rejected,
        "pages": report.pages,
        "duration_seconds": report.duration_seconds,
        "cursor": str(report.cursor) if report.cursor else "",
        "resumed": report.resumed,
    }


def _connection_asset(
    connector: LoadedConnector,
    *,
    key: dg.AssetKey,
    deps: list[dg.AssetKey],
    description: str,
    metadata: dict[str, str],
    what: str,
    work: Callable[..., SyncReport],
) -> dg.AssetsDefinition:
    """An asset partitioned by the connector's connections that runs `work` for one connection.

    A partner error becomes a Dagster Failure that says whose fault it is (config, transient or
    system error); transient ones may be retried.
    """

    @dg.asset(
        key=key,
        partitions_def=partitions_for(connector),
        group_name=connector.name,
        deps=deps,
        kinds={"python", "pandas"},
        pool=f"partner_{connector.name}",
        description=description,
        metadata={"connector": connector.name, **metadata},
        tags={"connector": connector.name, "category": connector.spec.category},
    )
    def _asset(
        context: dg.AssetExecutionContext,
        database: IntegrationDatabase,
        vault: CredentialVaultResource,
        partner_api: PartnerApi,
    ) -> dg.MaterializeResult:
        try:
            report = work(
                database.engine(),
                vault.vault(),
                context.partition_key,
                connector=connector,
                allow_loopback=partner_api.sandbox,
                progress=context.log.info,
                run_id=context.run.run_id,
            )
        except PartnerError as exc:
            raise dg.Failure(
                description=f"{connector.name} {what} for {context.partition_key}: {exc}",
                metadata={"failure_type": exc.failure_type, "connection": context.partition_key},
                allow_retries=exc.failure_type == "transient_error",
            ) from None
        return dg.MaterializeResult(metadata={"connection": context.partition_key, **_metadata(report)})

    return _asset


def _sync_asset(connector: LoadedConnector, name: str, stream: Stream) -> dg.AssetsDefinition:
    deps = [partner_source_key(connector.name, name), *lookup_deps(connector, stream)]
    if stream.for_each:
        deps.append(ats_key(stream.for_each.entity))
    return _connection_asset(
        connector,
        key=sync_asset_key(connector.name, name),
        deps=deps,
        description=stream.description or f"Sync {connector.spec.title} {name} into ATS {stream.entity}.",
        metadata={"entity": stream.entity, "direction": stream.direction},
        what=name,
        work=partial(sync_stream, stream=name),
    )


def webhook_events_key(connector: str) -> dg.AssetKey:
    return dg.AssetKey([connector, "webhook_events"])


def _webhook_asset(connector: LoadedConnector) -> dg.AssetsDefinition:
    """Applies the connector's webhook events from the inbox, per connection."""
    webhooks = connector.spec.webhooks
    assert webhooks is not None
    return _connection_asset(
        connector,
        key=webhook_events_key(connector.name),
        deps=[partner_source_key(connector.name, "webhooks")],
        description=f"Apply {connector.spec.title} webhook events received into the inbox.",
        metadata={"routes": ", ".join(sorted(webhooks.routes))},
        what="webhook events",
        work=apply_webhook_events,
    )


def build_connector_assets(connector: LoadedConnector) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Source specs and sync assets of one connector's inbound streams."""
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for name, stream in connector.spec.inbound_streams().items():
        assets.append(_partner_source(connector, name, stream))
        assets.append(_sync_asset(connector, name, stream))
    if connector.spec.webhooks:
        assets.append(
            dg.AssetSpec(
                key=partner_source_key(connector.name, "webhooks"),
                group_name=connector.name,
                description=f"{connector.spec.title}: events pushed to POST /webhooks/<connection>",
                kinds={"api"},
            )
        )
        assets.append(_webhook_asset(connector))
    return assets


def build_ats_entities(connectors: list[LoadedConnector]) -> list[dg.AssetSpec]:
    """The ATS entities, each downstream of every sync stream that writes it."""
    writers: dict[str, list[dg.AssetKey]] = {entity: [] for entity in ENTITY_DESCRIPTIONS}
    for connector in connectors:
        streams = connector.spec.inbound_streams()
        for name, stream in streams.items():
            for entity in entities_written(stream):
                writers[entity].append(sync_asset_key(connector.name, name))
        if connector.spec.webhooks:
            routed = {streams[r.stream].entity for r in connector.spec.webhooks.routes.values()}
            for entity in sorted(routed):
                writers[entity].append(webhook_events_key(connector.name))
    return [
        dg.AssetSpec(
            key=ats_key(entity),
            group_name=ATS_GROUP,
            description=ENTITY_DESCRIPTIONS[entity],
            deps=keys,
            kinds={"sqlalchemy"},
            metadata={"table": entity},
        )
        for entity, keys in writers.items()
    ]
