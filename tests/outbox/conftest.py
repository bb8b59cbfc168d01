"""Fixtures for the outbox tests: a Beeline connection whose ATS knows some of its postings."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import candidate, job, outbox, record_links
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.connectors.registry import load_connectors
from integration_pipelines.sandbox.beeline import BeelineSimulator
from tests.helpers import connect

FAST = {"backoff_base": 0.05, "backoff_cap": 1.0, "allow_loopback": True}


@dataclass
class Beeline:
    """A tenant's Beeline connection, its simulator and ATS jobs linked to open postings."""

    engine: sa.Engine
    store: ConnectionStore
    sim: BeelineSimulator
    tenant: str
    connection_id: str
    jobs: list[str]  # ATS job ids, each linked to an OPEN Beeline posting
    seeded_candidates: set[str]  # Beeline candidate uids that existed before the test

    def candidates(self, n: int) -> list[str]:
        return add_candidates(self.engine, self.tenant, n)

    def new_candidates(self) -> list[dict[str, Any]]:
        """Beeline candidates (submissions) made during the test."""
        return [c for c in self.sim.candidates(self.tenant) if c["uid"] not in self.seeded_candidates]

    def candidate_at_partner(self, uid: str) -> dict[str, Any]:
        return next(c for c in self.sim.candidates(self.tenant) if c["uid"] == uid)

    def uploads(self, path_suffix: str) -> list[Any]:
        """Requests with a body this tenant sent to a path ending in `path_suffix` (in order)."""
        return [u for u in self.sim.stats.uploads if u.tenant == self.tenant and u.path.endswith(path_suffix)]

    def items(self, **where: Any) -> list[dict[str, Any]]:
        return outbox_items(self.engine, connection_id=self.connection_id, **where)

    def link(self, entity: str, internal_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(record_links.c.external_id).where(
                    record_links.c.connection_id == self.connection_id,
                    record_links.c.entity == entity,
                    record_links.c.internal_id == internal_id,
                )
            ).scalar()


def add_candidates(engine: sa.Engine, tenant: str, n: int) -> list[str]:
    now = datetime.now(UTC)
    rows = []
    for _ in range(n):
        tag = uuid.uuid4().hex[:8]
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "tenant_id": tenant,
                "first_name": f"Ada{tag}",
                "last_name": "Lovelace",
                "email": f"ada.{tag}@example.com",
                "phone": "+1 512 555 0100",
                "created_at": now,
                "updated_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(candidate.insert(), rows)
    return [r["id"] for r in rows]


def link_jobs(engine: sa.Engine, sim: BeelineSimulator, tenant: str, connection_id: str, n: int) -> list[str]:
    """ATS jobs for `n` OPEN postings, with their record links (as an inbound sync would leave them)."""
    now = datetime.now(UTC)
    postings = [p for p in sim.postings(tenant) if p["status"] == "OPEN"][:n]
    jobs, links = [], []
    for posting in postings:
        job_id = str(uuid.uuid4())
        jobs.append(
            {
                "id": job_id,
                "tenant_id": tenant,
                "title": posting["title"],
                "status": "open",
                "bill_rate_max": Decimal(str(posting["billRateMax"])),
                "currency": posting["rateCurrency"],
                "created_at": now,
                "updated_at": now,
            }
        )
        links.append(
            {
                "connection_id": connection_id,
                "entity": "job",
                "external_id": posting["uid"],
                "internal_id": job_id,
                "synced_at": now,
            }
        )
    with engine.begin() as conn:
        conn.execute(job.insert(), jobs)
        conn.execute(record_links.insert(), links)
    return [j["id"] for j in jobs]


def outbox_items(engine: sa.Engine, **where: Any) -> list[dict[str, Any]]:
    query = sa.select(outbox).order_by(outbox.c.id)
    for name, value in where.items():
        query = query.where(outbox.c[name] == value)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def make_beeline(engine: sa.Engine, store: ConnectionStore, sandbox, tenant: str, jobs: int = 5) -> Beeline:
    connector = load_connectors()["beeline"]
    sim = sandbox.simulators["beeline"]
    sim.add_tenant(tenant, records=40)  # fewer postings than the default: faster to seed
    connection_id, _ = connect(store, sandbox, connector, tenant)
    seeded = {c["uid"] for c in sim.candidates(tenant)}
    return Beeline(
        engine, store, sim, tenant, connection_id, link_jobs(engine, sim, tenant, connection_id, jobs), seeded
    )


@pytest.fixture
def beeline(engine, store, sandbox, tenant) -> Beeline:
    return make_beeline(engine, store, sandbox, tenant)
