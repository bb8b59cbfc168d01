"""End to end through Dagster: materialise sync assets and find the rows in the ATS tables."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.definitions import build_definitions, sync_job_name
from integration_pipelines.resources.dagster_resources import default_resources, shared_engine
from integration_pipelines.resources.vault import CredentialVault
from tests.helpers import connect, scalar, seed_documents


@pytest.fixture
def env(monkeypatch, tmp_path) -> str:
    """Resources read everything from the environment, as in production."""
    key = CredentialVault.generate_key()
    monkeypatch.setenv("INTEGRATION_DATABASE_URL", f"sqlite:///{tmp_path / 'ats.db'}")
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", key)
    monkeypatch.setenv("INTEGRATION_SANDBOX", "1")
    return key


def test_materialising_sync_assets_writes_the_ats(env: str, tenant: str, sandbox, tmp_path) -> None:
    engine = shared_engine(f"sqlite:///{tmp_path / 'ats.db'}")
    store = ConnectionStore(engine, CredentialVault([env]))
    connectors = load_connectors()
    beeline, _ = connect(store, sandbox, connectors["beeline"], tenant)
    textkernel, _ = connect(store, sandbox, connectors["textkernel"], tenant)
    seed_documents(engine, tenant, 6, unreadable=1)

    defs = build_definitions(list(connectors.values()), resources=default_resources())
    with dg.instance_for_test() as instance:
        # the connections sensor adds the partitions from the connections table
        sensor = defs.resolve_sensor_def("connections_to_partitions")
        with dg.build_sensor_context(instance=instance, resources=default_resources()) as context:
            result = sensor(context)
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        assert beeline in instance.get_dynamic_partitions("beeline_connections")

        run = defs.resolve_job_def(sync_job_name("beeline")).execute_in_process(
            partition_key=beeline, instance=instance
        )
        assert run.success
        mats = {
            e.materialization.asset_key.path[-1]: e.materialization
            for e in run.get_asset_materialization_events()
        }
        assert set(mats) == {"job_postings", "submissions", "placements"}
        mat = mats["job_postings"]
        meta = mat.metadata
        assert meta["written"].value == 300 and meta["rejected"].value == 0 and meta["pages"].value == 7
        assert mat.partition == beeline
        assert mats["placements"].metadata["written"].value == 20
        assert scalar(engine, "select count(*) from job where tenant_id = :t", t=tenant) == 300

        run = defs.resolve_job_def(sync_job_name("textkernel")).execute_in_process(
            partition_key=textkernel, instance=instance
        )
        assert run.success
        assert scalar(engine, "select count(*) from parsed_resume where tenant_id = :t", t=tenant) == 5
        assert scalar(engine, "select count(*) from quarantine where connection_id = :c", c=textkernel) == 1
        # parsing filled the candidates' empty e-mail addresses
        assert (
            scalar(
                engine, "select count(*) from candidate where tenant_id = :t and email is not null", t=tenant
            )
            == 5
        )

        # the polling schedule asks for one run per active connection
        schedule = defs.resolve_schedule_def("beeline_poll")
        tick = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
        with dg.build_schedule_context(
            instance=instance,
            resources=default_resources(),
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests
        assert [r.partition_key for r in requests] == [beeline]
        assert requests[0].run_key == f"{beeline}@{tick.isoformat()}"


def test_definitions_have_lineage_from_partner_to_ats() -> None:
    defs = build_definitions(list(load_connectors().values()))
    graph = defs.resolve_asset_graph()
    sync = dg.AssetKey(["beeline", "job_postings"])
    assert dg.AssetKey(["partners", "beeline", "job_postings"]) in graph.get(sync).parent_keys
    assert sync in graph.get(dg.AssetKey(["ats", "job"])).parent_keys
    parser = dg.AssetKey(["daxtra", "resumes"])
    assert dg.AssetKey(["ats", "candidate_document"]) in graph.get(parser).parent_keys
    assert parser in graph.get(dg.AssetKey(["ats", "candidate"])).parent_keys
