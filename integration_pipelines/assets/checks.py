"""Asset checks on the sync assets: reject rate per connection and freshness across connections.

For each inbound stream of a connector:

- ``{stream}_reject_rate`` (partitioned like the sync asset, one result per connection): the
  share of records the sync run rejected (quarantined) must not exceed the connector's
  ``health.max_reject_rate``.
- ``{stream}_freshness`` (not partitioned): every active connection of the connector must have
  synced the stream successfully within ``health.freshness_minutes``.

Both are WARN checks: they flag data problems in the asset graph; incidents and alerts come
from the health sensor. The figures are read from ``sync_runs`` and ``sync_state``, which
the sync writes in the same transaction as the data.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from integration_pipelines.assets.sync_assets import partitions_for, sync_asset_key
from integration_pipelines.canonical.tables import connections, sync_runs, sync_state
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.resources.dagster_resources import IntegrationDatabase


@dataclass(frozen=True)
class CheckOutcome:
    """Pass/fail, a one-line description and metadata: what a check reports, before Dagster."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def result(self) -> dg.AssetCheckResult:
        """The Dagster check result (WARN severity)."""
        return dg.AssetCheckResult(
            passed=self.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=self.description,
            metadata=self.metadata,
        )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ---------------------------------------------------------------- reject rate


def run_counts(
    engine: sa.Engine, connection_id: str, stream: str, dagster_run_id: str | None = None
) -> tuple[int, int, str | None] | None:
    """``(records, rejected, dagster_run_id)`` of the sync run to judge, or None without one.

    The run of `dagster_run_id` when it recorded this stream, else the latest succeeded run.
    """
    base = sa.select(sync_runs.c.records, sync_runs.c.rejected, sync_runs.c.dagster_run_id).where(
        sync_runs.c.connection_id == connection_id, sync_runs.c.stream == stream
    )
    with engine.connect() as conn:
        row = None
        if dagster_run_id:
            query = base.where(
                sync_runs.c.dagster_run_id == dagster_run_id, sync_runs.c.status == "succeeded"
            )
            row = conn.execute(query.order_by(sync_runs.c.id.desc()).limit(1)).first()
        if row is None:
            query = base.where(sync_runs.c.status == "succeeded").order_by(sync_runs.c.id.desc()).limit(1)
            row = conn.execute(query).first()
    return (int(row.records or 0), int(row.rejected or 0), row.dagster_run_id) if row else None


def reject_rate_outcome(connection_id: str, records: int, rejected: int, threshold: float) -> CheckOutcome:
    """Passes when ``rejected / records <= threshold`` (no records: nothing rejected, passes)."""
    rate = rejected / records if records else 0.0
    passed = rate <= threshold
    verdict = "within" if passed else "above"
    return CheckOutcome(
        passed=passed,
        description=(
            f"{connection_id}: {rejected} of {records} records rejected ({rate:.1%}), "
            f"{verdict} the {threshold:.1%} limit"
        ),
        metadata={
            "connection": connection_id,
            "rate": dg.MetadataValue.float(round(rate, 6)),
            "threshold": dg.MetadataValue.float(threshold),
            "records": records,
            "rejected": rejected,
        },
    )


# ---------------------------------------------------------------- freshness


def freshness_outcome(
    engine: sa.Engine, connector: str, stream: str, freshness_minutes: int, now: datetime | None = None
) -> CheckOutcome:
    """Passes when every active connection of `connector` synced `stream` within the window.

    Metadata names the stalest connection and its age, the stale connections, and each
    connection's age in minutes (None: never synced).
    """
    now = _utc(now or datetime.now(UTC))
    query = (
        sa.select(connections.c.id, sync_state.c.last_success_at)
        .select_from(
            connections.outerjoin(
                sync_state,
                sa.and_(sync_state.c.connection_id == connections.c.id, sync_state.c.stream == stream),
            )
        )
        .where(connections.c.connector == connector, connections.c.status == "active")
        .order_by(connections.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    window = timedelta(minutes=freshness_minutes)
    ages: dict[str, float | None] = {}
    stale: list[str] = []
    for row in rows:
        age = None if row.last_success_at is None else now - _utc(row.last_success_at)
        ages[row.id] = None if age is None else round(age.total_seconds() / 60, 1)
        if age is None or age > window:
            stale.append(row.id)
    metadata: dict[str, Any] = {
        "threshold_minutes": freshness_minutes,
        "connections": len(rows),
        "stale_connections": dg.MetadataValue.json(stale),
        "age_minutes_by_connection": dg.MetadataValue.json(ages),
    }
    if not rows:
        return CheckOutcome(True, f"no active {connector} connections", metadata)
    never = [c for c, age in ages.items() if age is None]
    stalest = never[0] if never else max(ages, key=lambda c: ages[c] or 0.0)
    metadata["stalest_connection"] = stalest
    metadata["stalest_age_minutes"] = ages[stalest]  # None: never synced
    stalest_text = "never synced" if ages[stalest] is None else f"last synced {ages[stalest]:.0f} min ago"
    if stale:
        description = (
            f"{len(stale)} of {len(rows)} connections not synced within {freshness_minutes} min; "
            f"stalest {stalest} ({stalest_text})"
        )
    else:
        description = f"all {len(rows)} connections synced within {freshness_minutes} min; stalest {stalest}"
        description += f" ({stalest_text})"
    return CheckOutcome(not stale, description, metadata)


# ---------------------------------------------------------------- Dagster definitions


def _reject_rate_check(connector: LoadedConnector, stream: str) -> dg.AssetChecksDefinition:
    threshold = connector.spec.health.max_reject_rate
    with warnings.catch_warnings():  # partitioned checks are a preview feature in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(
            asset=sync_asset_key(connector.name, stream),
            name=f"{stream}_reject_rate",
            partitions_def=partitions_for(connector),
            description=f"Rejected records of a {stream} sync stay within {threshold:.1%} of those read.",
            metadata={"threshold": threshold},
        )
        def _check(
            context: dg.AssetCheckExecutionContext, database: IntegrationDatabase
        ) -> dg.AssetCheckResult:
            connection_id = context.partition_key
            counts = run_counts(database.engine(), connection_id, stream, context.run.run_id)
            if counts is None:
                return CheckOutcome(
                    True, f"{connection_id}: no successful {stream} sync yet", {"connection": connection_id}
                ).result()
            records, rejected, run_id = counts
            outcome = reject_rate_outcome(connection_id, records, rejected, threshold)
            if run_id:
                outcome.metadata["dagster_run_id"] = run_id
            return outcome.result()

    return _check


def _freshness_check(connector: LoadedConnector, stream: str) -> dg.AssetChecksDefinition:
    minutes = connector.spec.health.freshness_minutes

    @dg.asset_check(
        asset=sync_asset_key(connector.name, stream),
        name=f"{stream}_freshness",
        description=f"Every active connection synced {stream} successfully within the last {minutes} min.",
        metadata={"threshold_minutes": minutes},
    )
    def _check(database: IntegrationDatabase) -> dg.AssetCheckResult:
        return freshness_outcome(database.engine(), connector.name, stream, minutes).result()

    return _check


def build_stream_checks(connector: LoadedConnector) -> list[dg.AssetChecksDefinition]:
    """Reject-rate and freshness checks for each inbound sync asset of `connector`."""
    checks: list[dg.AssetChecksDefinition] = []
    for stream in connector.spec.inbound_streams():
        checks.append(_reject_rate_check(connector, stream))
        checks.append(_freshness_check(connector, stream))
    return checks


def freshness_policy(connector: LoadedConnector) -> dg.FreshnessPolicy:
    """Fail when no partition was materialised within ``freshness_minutes`` (warn at half)."""
    minutes = connector.spec.health.freshness_minutes
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=minutes), warn_window=timedelta(minutes=minutes / 2)
    )


def with_freshness(assets: Sequence[Any], connector: LoadedConnector) -> list[Any]:
    """`assets` with the connector's freshness policy on its sync assets (others unchanged).

    Meant for the output of ``build_connector_assets``: source specs and the webhook asset
    pass through as they are. Dagster evaluates these policies per asset, not per partition
    (any connection's sync makes the asset fresh), and only with ``freshness: enabled: true``
    in ``dagster.yaml``: the ``{stream}_freshness`` checks are the per-connection view.
    """
    policy = freshness_policy(connector)
    keys = {sync_asset_key(connector.name, s) for s in connector.spec.inbound_streams()}

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        return dg.apply_freshness_policy(spec, policy) if spec.key in keys else spec

    out: list[Any] = []
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition) and keys & set(asset.keys):
            out.append(asset.map_asset_specs(apply))
        else:
            out.append(asset)
    return out


__all__ = [
    "CheckOutcome",
    "build_stream_checks",
    "freshness_outcome",
    "freshness_policy",
    "reject_rate_outcome",
    "run_counts",
    "with_freshness",
]
