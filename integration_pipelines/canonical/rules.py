"""Domain rules that follow a write, whichever partner the data came from.

A parsed resume fills the candidate it belongs to: fields the recruiter left empty are
taken from the parse, fields someone already filled in are never overwritten.
"""

import pandas as pd
import sqlalchemy as sa

from integration_pipelines.canonical.tables import candidate

RESUME_FILLS_CANDIDATE = ("first_name", "last_name", "email", "phone", "city", "postal_code", "country_code")


def fill_candidate_from_resume(conn: sa.Connection, tenant_id: str, rows: pd.DataFrame) -> int:
    """Fill each candidate's empty fields from its parsed resume; returns rows touched."""
    fields = [f for f in RESUME_FILLS_CANDIDATE if f in rows.columns]
    if rows.empty or not fields or "candidate_id" not in rows.columns:
        return 0
    params = (
        rows[["candidate_id", *fields]]
        .astype(object)
        .where(rows[["candidate_id", *fields]].notna(), None)
        .rename(columns={"candidate_id": "_candidate_id", **{f: f"new_{f}" for f in fields}})
        .to_dict("records")
    )
    for p in params:
        p["_tenant_id"] = tenant_id
    statement = (
        candidate.update()
        .where(
            candidate.c.id == sa.bindparam("_candidate_id"),
            candidate.c.tenant_id == sa.bindparam("_tenant_id"),
        )
        .values(
            {
                f: sa.func.coalesce(
                    sa.func.nullif(candidate.c[f], ""), sa.bindparam(f"new_{f}", type_=candidate.c[f].type)
                )
                for f in fields
            }
        )
    )
    return conn.execute(statement, params).rowcount


def after_write(conn: sa.Connection, *, entity: str, tenant_id: str, rows: pd.DataFrame) -> None:
    """Run the rules that follow writing `rows` of `entity`."""
    if entity == "parsed_resume":
        fill_candidate_from_resume(conn, tenant_id, rows)
