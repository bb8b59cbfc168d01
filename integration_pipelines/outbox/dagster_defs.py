"""Outbox delivery in Dagster: the `outbox_delivery` job and the `outbox_due` sensor that starts it.

The sensor looks at the outbox every 15 seconds and asks for a run when items are due. Its run
key names the due set (item ids and their attempt counts), so while one set is being delivered
the sensor does not start a second run for it, and a set that is due again later (after a failed
attempt) gets a new run. Runs that do overlap are safe anyway: items are claimed one at a time.
"""

import hashlib
from datetime import UTC, datetime

import dagster as dg

from integration_pipelines.outbox.delivery import deliver_due, due_items
from integration_pipelines.resources.dagster_resources import (
    CredentialVaultResource,
    IntegrationDatabase,
    PartnerApi,
)

JOB_NAME = "outbox_delivery"
SENSOR_NAME = "outbox_due"


class OutboxDeliveryConfig(dg.Config):
    """Which items one run delivers."""

    connection_id: str | None = None  # one connection only; all by default
    limit: int = 500  # items per run; the sensor asks again for what is left


def build_outbox_job() -> dg.JobDefinition:
    """The `outbox_delivery` job: one op that sends the due outbox items."""

    @dg.op(
        name="deliver_outbox",
        description="Send due outbox items to partners; retried with backoff, dead-lettered after a bound.",
        tags={"kind": "outbox"},
    )
    def deliver_outbox(
        context: dg.OpExecutionContext,
        config: OutboxDeliveryConfig,
        database: IntegrationDatabase,
        vault: CredentialVaultResource,
        partner_api: PartnerApi,
    ) -> dg.Output[dict]:
        report = deliver_due(
            database.engine(),
            vault.vault(),
            connection_id=config.connection_id,
            limit=config.limit,
            allow_loopback=partner_api.sandbox,
        )
        context.log.info(f"outbox: {report.summary()}")
        for result in report.results:
            if result.outcome == "dead":
                context.log.warning(
                    f"outbox item {result.item_id} ({result.connection_id}) is dead: {result.error}"
                )
        counts = {
            "delivered": report.delivered,
            "retried": report.retried,
            "dead": report.dead,
            "skipped_blocked": report.skipped_blocked,
            "remaining": report.remaining,
        }
        metadata: dict = {**counts, "behind_dead_items": report.behind_dead}
        if report.next_due_at is not None:
            metadata["next_due_at"] = report.next_due_at.isoformat()
        return dg.Output(counts, metadata=metadata)

    @dg.job(
        name=JOB_NAME,
        description="Deliver the outbox: ATS changes waiting for partners, in order per record.",
        tags={"kind": "outbox"},
    )
    def outbox_delivery() -> None:
        deliver_outbox()

    return outbox_delivery


def due_set_key(due: list[tuple[int, int]]) -> str:
    """A run key for a set of due items (ids and attempts): the same set asks for the same run."""
    digest = hashlib.sha1(",".join(f"{i}:{a}" for i, a in due).encode(), usedforsecurity=False)
    return f"outbox:{due[0][0]}-{due[-1][0]}:{len(due)}:{digest.hexdigest()[:12]}"


def build_outbox_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    """The `outbox_due` sensor: every 15 s, a run of `job` when outbox items are due."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts an outbox delivery run when outbound changes are due.",
    )
    def outbox_due(context: dg.SensorEvaluationContext, database: IntegrationDatabase) -> dg.SensorResult:
        with database.engine().connect() as conn:
            due = due_items(conn, datetime.now(UTC))
        if not due:
            return dg.SensorResult(skip_reason=dg.SkipReason("no outbox items are due"))
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=due_set_key(due), tags={"outbox_due_items": str(len(due))})]
        )

    return outbox_due
