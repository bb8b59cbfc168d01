"""The outbox in Dagster: the sensor asks for one run per due set, the job delivers it."""

from datetime import date

import dagster as dg

from integration_pipelines.outbox.changes import submit_candidate
from integration_pipelines.outbox.dagster_defs import build_outbox_job, build_outbox_sensor
from integration_pipelines.resources.dagster_resources import (
    CredentialVaultResource,
    IntegrationDatabase,
    PartnerApi,
)
from tests.outbox.conftest import Beeline


def test_sensor_and_job_deliver_the_outbox(beeline: Beeline, vault_key: str) -> None:
    resources = {
        "database": IntegrationDatabase(url=beeline.engine.url.render_as_string(hide_password=False)),
        "vault": CredentialVaultResource(encryption_keys=vault_key),
        "partner_api": PartnerApi(sandbox=True),
    }
    job = build_outbox_job()
    sensor = build_outbox_sensor(job)
    assert job.name == "outbox_delivery" and sensor.name == "outbox_due"
    assert sensor.minimum_interval_seconds == 15
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    defs = dg.Definitions(jobs=[job], sensors=[sensor], resources=resources)

    with dg.instance_for_test() as instance:

        def tick() -> dg.SensorResult:
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                return defs.resolve_sensor_def("outbox_due")(context)

        assert tick().skip_reason is not None
        for person in beeline.candidates(2):
            submit_candidate(
                beeline.engine,
                tenant_id=beeline.tenant,
                candidate_id=person,
                job_id=beeline.jobs[0],
                bill_rate=90,
                currency="USD",
                rate_period="hour",
                available_date=date(2026, 3, 1),
            )
        (request,) = tick().run_requests
        (again,) = tick().run_requests
        assert request.run_key == again.run_key  # the same due set: Dagster starts it once

        result = defs.resolve_job_def("outbox_delivery").execute_in_process(instance=instance)
        assert result.success
        output = result.output_for_node("deliver_outbox")
        assert output["delivered"] == 2 and output["dead"] == 0
        assert {i["status"] for i in beeline.items()} == {"delivered"}
        assert len(beeline.new_candidates()) == 2
        assert tick().skip_reason is not None
