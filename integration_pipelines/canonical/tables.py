"""SQLAlchemy tables: the ATS's canonical entities and the framework's own bookkeeping.

Entity ids are UUID strings made by the framework, so a page of new rows and their
record links can be written in one round trip on SQLite and PostgreSQL alike.
"""

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTCDateTime = sa.DateTime(timezone=True)


def _entity(name: str, *columns: sa.Column) -> sa.Table:
    """A canonical entity table: tenant-scoped, with framework timestamps."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
        *columns,
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


# ------------------------------------------------------------------ framework tables

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status_token_hash", sa.String(128)),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.String(140), primary_key=True),  # "<tenant>/<connector>[-<suffix>]"
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("connector", sa.String(64), nullable=False, index=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="active"),  # active | paused
    sa.Column("created_at", UTCDateTime, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column(
        "connection_id", sa.String(140), sa.ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("ciphertext", sa.Text, nullable=False),  # Fernet token; never plaintext
    sa.Column("key_fingerprint", sa.String(16), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

record_links = sa.Table(
    "record_links",
    metadata,
    sa.Column("connection_id", sa.String(140), primary_key=True),
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("external_id", sa.String(200), primary_key=True),
    sa.Column("internal_id", sa.String(36), nullable=False, index=True),
    sa.Column("payload_hash", sa.String(32)),  # skips rewriting unchanged records
    sa.Column("synced_at", UTCDateTime, nullable=False),
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("connection_id", sa.String(140), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("cursor", sa.JSON),  # committed incremental cursor (the high-water mark)
    sa.Column("checkpoint", sa.JSON),  # in-flight run: where to resume after a crash
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("records_total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejects_total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(140), nullable=False, index=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(20), nullable=False),  # running | succeeded | failed
    sa.Column("pages", sa.Integer, nullable=False, server_default="0"),
    sa.Column("records", sa.Integer, nullable=False, server_default="0"),
    sa.Column("inserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(140), nullable=False, index=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("external_id", sa.String(200)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.JSON, nullable=False),  # the partner record exactly as received
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(140), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("occurred_at", UTCDateTime),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    # pending | applied | failed | ignored
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("applied_at", UTCDateTime),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("connection_id", "event_id", name="uq_inbox_connection_event"),
    sa.Index("ix_inbox_pending", "status", "id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(140), nullable=False, index=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(36), nullable=False),  # internal id of the ATS record
    sa.Column("operation", sa.String(10), nullable=False),  # create | update
    sa.Column("payload", sa.JSON, nullable=False),  # the changed fields, as the ATS wrote them
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),  # pending|delivered|dead
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("external_id", sa.String(200)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_record", "connection_id", "entity", "record_id", "id"),
)

conflict_log = sa.Table(
    "conflict_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(140), nullable=False, index=True),
    sa.Column("stream", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(36), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("ats_value", sa.JSON),
    sa.Column("partner_value", sa.JSON),
    sa.Column("winner", sa.String(10), nullable=False),  # ats | partner
    sa.Column("policy", sa.String(30), nullable=False),
    sa.Column("ats_changed_at", UTCDateTime),
    sa.Column("partner_changed_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(140), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),  # open | resolved
    sa.Column("severity", sa.String(20), nullable=False),  # degraded | down
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("last_error", sa.Text),  # redacted
    sa.Column("dagster_run_id", sa.String(64)),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("alerted_at", UTCDateTime),
    sa.Column("recovery_alerted_at", UTCDateTime),
)

alerts_sent = sa.Table(
    "alerts_sent",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # incident | recovery
    sa.Column("channel", sa.String(20), nullable=False),  # slack | email
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
)

# ------------------------------------------------------------------ canonical entities

candidate = _entity(
    "candidate",
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("email", sa.String(254)),
    sa.Column("phone", sa.String(40)),
    sa.Column("city", sa.String(100)),
    sa.Column("postal_code", sa.String(20)),
    sa.Column("country_code", sa.String(2)),
    sa.Column("headline", sa.String(300)),
    sa.Column("skills", sa.JSON),
)

candidate_document = _entity(
    "candidate_document",
    sa.Column("candidate_id", sa.String(36), sa.ForeignKey("candidate.id"), nullable=False, index=True),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

parsed_resume = _entity(
    "parsed_resume",
    sa.Column("candidate_id", sa.String(36), sa.ForeignKey("candidate.id"), nullable=False, index=True),
    sa.Column("document_id", sa.String(36), sa.ForeignKey("candidate_document.id"), nullable=False),
    sa.Column("parser", sa.String(64), nullable=False),
    sa.Column("full_name", sa.String(200)),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("email", sa.String(254)),
    sa.Column("phone", sa.String(40)),
    sa.Column("city", sa.String(100)),
    sa.Column("postal_code", sa.String(20)),
    sa.Column("country_code", sa.String(2)),
    sa.Column("summary", sa.Text),
    sa.Column("current_title", sa.String(200)),
    sa.Column("current_employer", sa.String(200)),
    sa.Column("skills", sa.JSON),
    sa.Column("languages", sa.JSON),
    sa.Column("positions", sa.JSON),
)

job = _entity(
    "job",
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("client_name", sa.String(200)),
    sa.Column("client_reference", sa.String(100)),
    sa.Column("description", sa.Text),
    sa.Column("location", sa.String(200)),
    sa.Column("country_code", sa.String(2)),
    sa.Column("start_date", sa.Date),
    sa.Column("end_date", sa.Date),
    sa.Column("openings", sa.Integer),
    sa.Column("bill_rate_max", sa.Numeric(12, 2)),
    sa.Column("currency", sa.String(3)),
    sa.Column("rate_period", sa.String(10)),
    sa.Column("remote_updated_at", UTCDateTime),
)

submission = _entity(
    "submission",
    sa.Column("candidate_id", sa.String(36), sa.ForeignKey("candidate.id")),
    sa.Column("job_id", sa.String(36), sa.ForeignKey("job.id")),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("bill_rate", sa.Numeric(12, 2)),
    sa.Column("pay_rate", sa.Numeric(12, 2)),
    sa.Column("currency", sa.String(3)),
    sa.Column("rate_period", sa.String(10)),
    sa.Column("available_date", sa.Date),
    sa.Column("remote_updated_at", UTCDateTime),
)

placement = _entity(
    "placement",
    sa.Column("candidate_id", sa.String(36), sa.ForeignKey("candidate.id")),
    sa.Column("job_id", sa.String(36), sa.ForeignKey("job.id")),
    sa.Column("submission_id", sa.String(36), sa.ForeignKey("submission.id")),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("start_date", sa.Date),
    sa.Column("end_date", sa.Date),
    sa.Column("bill_rate", sa.Numeric(12, 2)),
    sa.Column("pay_rate", sa.Numeric(12, 2)),
    sa.Column("currency", sa.String(3)),
    sa.Column("rate_period", sa.String(10)),
    sa.Column("remote_updated_at", UTCDateTime),
)

ENTITY_TABLES: dict[str, sa.Table] = {
    t.name: t for t in (candidate, candidate_document, parsed_resume, job, submission, placement)
}
