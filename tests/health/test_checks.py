"""Asset checks on the sync assets: reject rate and freshness from `sync_runs` / `sync_state` rows."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from integration_pipelines.assets.checks import (
    build_stream_checks,
    freshness_outcome,
    reject_rate_outcome,
    run_counts,
    with_freshness,
)
from integration_pipelines.assets.sync_assets import build_connector_assets, partitions_for, sync_asset_key
from integration_pipelines.canonical.tables import connections, sync_runs, sync_state, tenants
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.resources.dagster_resources import IntegrationDatabase, default_resources

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
STREAM = "job_postings"


@pytest.fixture(scope="module")
def beeline():
    return load_connectors()["beeline"]


def add_connection(engine: sa.Engine, tenant: str, status: str = "active", connector: str = "beeline") -> str:
    connection_id = f"{tenant}/{connector}"
    with engine.begin() as conn:
        conn.execute(tenants.insert().values(id=tenant, name=tenant, created_at=NOW))
        conn.execute(
            connections.insert().values(
                id=connection_id,
                tenant_id=tenant,
                connector=connector,
                config={},
                status=status,
                created_at=NOW,
            )
        )
    return connection_id


def add_run(
    engine: sa.Engine, connection_id: str, status: str, records: int, rejected: int, run_id: str | None = None
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sync_runs.insert().values(
                connection_id=connection_id,
                stream=STREAM,
                dagster_run_id=run_id,
                started_at=NOW,
                finished_at=NOW,
                status=status,
                records=records,
                rejected=rejected,
            )
        )


def synced(engine: sa.Engine, connection_id: str, minutes_ago: float, now: datetime = NOW) -> None:
    with engine.begin() as conn:
        conn.execute(
            sync_state.insert().values(
                connection_id=connection_id,
                stream=STREAM,
                last_success_at=now - timedelta(minutes=minutes_ago),
                updated_at=NOW,
            )
        )


# ---------------------------------------------------------------- reject rate


def test_reject_rate_passes_up_to_the_threshold() -> None:
    ok = reject_rate_outcome("acme/beeline", records=100, rejected=5, threshold=0.05)
    assert ok.passed and ok.metadata["rate"].value == 0.05 and ok.metadata["threshold"].value == 0.05
    bad = reject_rate_outcome("acme/beeline", records=100, rejected=6, threshold=0.05)
    assert not bad.passed
    assert bad.description == "acme/beeline: 6 of 100 records rejected (6.0%), above the 5.0% limit"
    assert reject_rate_outcome("acme/beeline", records=0, rejected=0, threshold=0.05).passed
    result = bad.result()
    assert result.severity == dg.AssetCheckSeverity.WARN and not result.passed


def test_run_counts_prefer_the_checked_run_then_the_latest_success(engine) -> None:
    add_run(engine, "acme/beeline", "succeeded", 100, 1, run_id="r1")
    add_run(engine, "acme/beeline", "succeeded", 50, 10, run_id="r2")
    add_run(engine, "acme/beeline", "failed", 0, 0, run_id="r3")
    assert run_counts(engine, "acme/beeline", STREAM, "r1") == (100, 1, "r1")
    assert run_counts(engine, "acme/beeline", STREAM, "r3") == (
        50,
        10,
        "r2",
    )  # a failed run: the last success
    assert run_counts(engine, "acme/beeline", STREAM) == (50, 10, "r2")
    assert run_counts(engine, "other/beeline", STREAM) is None


# ---------------------------------------------------------------- freshness


def test_freshness_names_the_stalest_connection(engine) -> None:
    fresh, stale, never = (add_connection(engine, t) for t in ("fresh", "stale", "never"))
    paused = add_connection(engine, "paused", status="paused")
    synced(engine, fresh, 10)
    synced(engine, stale, 200)
    synced(engine, paused, 5000)  # paused connections are not expected to sync

    outcome = freshness_outcome(engine, "beeline", STREAM, 120, now=NOW)
    assert not outcome.passed
    assert outcome.metadata["stalest_connection"] == never and outcome.metadata["stalest_age_minutes"] is None
    assert sorted(outcome.metadata["stale_connections"].value) == [never, stale]
    assert outcome.metadata["age_minutes_by_connection"].value == {fresh: 10.0, never: None, stale: 200.0}
    assert outcome.description.startswith("2 of 3 connections not synced within 120 min")

    synced(engine, never, 30)
    with engine.begin() as conn:
        conn.execute(
            sync_state.update().where(sync_state.c.connection_id == stale).values(last_success_at=NOW)
        )
    outcome = freshness_outcome(engine, "beeline", STREAM, 120, now=NOW)
    assert outcome.passed
    assert (outcome.metadata["stalest_connection"], outcome.metadata["stalest_age_minutes"]) == (never, 30.0)


def test_freshness_without_connections_passes(engine) -> None:
    add_connection(engine, "other", connector="textkernel")
    outcome = freshness_outcome(engine, "beeline", STREAM, 120, now=NOW)
    assert outcome.passed and outcome.metadata["connections"] == 0


# ---------------------------------------------------------------- Dagster definitions


def test_checks_cover_every_inbound_stream_and_load(beeline) -> None:
    checks = build_stream_checks(beeline)
    keys = {key for check in checks for key in check.check_keys}
    streams = list(beeline.spec.inbound_streams())
    assert keys == {
        dg.AssetCheckKey(sync_asset_key("beeline", s), f"{s}_{kind}")
        for s in streams
        for kind in ("reject_rate", "freshness")
    }
    reject = next(
        c for c in checks if c.check_specs and next(iter(c.check_specs)).name.endswith("reject_rate")
    )
    assert next(iter(reject.check_specs)).partitions_def == partitions_for(beeline)
    defs = dg.Definitions(
        assets=with_freshness(build_connector_assets(beeline), beeline),
        asset_checks=checks,
        resources=default_resources(),
    )
    dg.Definitions.validate_loadable(defs)
    node = defs.get_repository_def().asset_graph.get(sync_asset_key("beeline", STREAM))
    assert node.freshness_policy.fail_window.to_timedelta() == timedelta(
        minutes=beeline.spec.health.freshness_minutes
    )


def test_freshness_check_runs_in_dagster_against_the_database(engine, tenant, beeline) -> None:
    """Only the check is selected: Dagster runs it without materialising the sync asset.

    (The partitioned reject-rate check cannot run alone through `dg.materialize` in Dagster
    1.13.27, which looks for a partitions definition among the selected *assets*; it runs in
    the sync job's partitioned runs, and its logic is tested above.)
    """
    connection_id = add_connection(engine, tenant)
    stale_id = add_connection(engine, f"{tenant}x")
    synced(engine, connection_id, 1, now=datetime.now(UTC))  # the check runs on the real clock
    synced(engine, stale_id, 600, now=datetime.now(UTC))
    sync_asset = next(
        a
        for a in build_connector_assets(beeline)
        if isinstance(a, dg.AssetsDefinition) and sync_asset_key("beeline", STREAM) in a.keys
    )
    checks = [
        c for c in build_stream_checks(beeline) if any(k.asset_key == sync_asset.key for k in c.check_keys)
    ]
    freshness_check = next(c for c in checks if next(iter(c.check_keys)).name == f"{STREAM}_freshness")

    result = dg.materialize(
        [sync_asset, *checks],
        selection=dg.AssetSelection.checks(freshness_check),
        instance=dg.DagsterInstance.ephemeral(),
        resources={**default_resources(), "database": IntegrationDatabase(url=str(engine.url))},
    )

    assert result.success and not result.get_asset_materialization_events()
    [freshness] = result.get_asset_check_evaluations()
    assert not freshness.passed and freshness.severity == dg.AssetCheckSeverity.WARN
    assert freshness.metadata["stalest_connection"].value == stale_id
    assert freshness.metadata["stalest_age_minutes"].value == pytest.approx(600, abs=1)
    assert freshness.metadata["stale_connections"].value == [stale_id]
