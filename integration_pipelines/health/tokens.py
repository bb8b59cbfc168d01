"""Status-page tokens: one secret per tenant for its status page, one for the internal overview.

A tenant token is `st_` followed by 43 url-safe random characters (`secrets.token_urlsafe(32)`,
256 bits). Only its SHA-256 hex digest is stored, in `tenants.status_token_hash`, so the
database never holds a usable token; issuing a new one replaces (and so revokes) the old one.

The internal overview (Customer Success, every tenant) takes the token set in the environment
variable `INTEGRATION_STATUS_ADMIN_TOKEN`; without it the overview is closed to everyone.
"""

import hashlib
import hmac
import os
import secrets

import sqlalchemy as sa

from integration_pipelines.canonical.tables import tenants

TOKEN_PREFIX = "st_"
TOKEN_MAX_LENGTH = 200  # longer strings are refused before hashing or querying
ENV_ADMIN_TOKEN = "INTEGRATION_STATUS_ADMIN_TOKEN"


class UnknownTenantError(KeyError):
    """A token was requested for a tenant that does not exist."""


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored for `token`."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(engine: sa.Engine, tenant_id: str) -> str:
    """A new status token for `tenant_id`, replacing any earlier one; only its hash is stored.

    Raises `UnknownTenantError` when the tenant does not exist. The returned token cannot be
    recovered later: issue a new one if it is lost.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        updated = conn.execute(
            tenants.update().where(tenants.c.id == tenant_id).values(status_token_hash=hash_token(token))
        ).rowcount
    if updated != 1:
        raise UnknownTenantError(tenant_id)
    return token


def _plausible(token: str | None) -> bool:
    return bool(token) and token.startswith(TOKEN_PREFIX) and len(token) <= TOKEN_MAX_LENGTH


def tenant_for_token(engine: sa.Engine, token: str | None) -> str | None:
    """The tenant whose current status token is `token`, or None.

    The lookup is by the token's SHA-256 (an attacker controls the token, not its digest, so
    the index comparison reveals nothing useful); the stored digest is then compared again in
    constant time before the tenant is returned.
    """
    if token is None or not _plausible(token):
        return None
    digest = hash_token(token)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(tenants.c.id, tenants.c.status_token_hash).where(tenants.c.status_token_hash == digest)
        ).first()
    if row is None or row.status_token_hash is None:
        return None
    if not hmac.compare_digest(row.status_token_hash.encode("ascii"), digest.encode("ascii")):
        return None
    return row.id


def is_admin_token(token: str | None) -> bool:
    """Whether `token` is the internal overview token (constant time; False when it is unset)."""
    expected = os.environ.get(ENV_ADMIN_TOKEN, "")
    if not expected or not token or len(token) > TOKEN_MAX_LENGTH:
        return False
    return hmac.compare_digest(
        hashlib.sha256(token.encode("utf-8")).digest(), hashlib.sha256(expected.encode("utf-8")).digest()
    )
