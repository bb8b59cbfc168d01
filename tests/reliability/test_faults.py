"""Fault injection through the sandbox, for every inbound stream of every connector.

Each test arms one kind of partner trouble on the stream's simulator and checks the two
things on-call cares about: nothing lost and nothing doubled (entity rows == record links ==
what the partner has, after a rerun where the first run may fail), and a clear outcome (the
run's status in ``sync_runs``, an error that says what happened, where, and what to do).

Faults that fit inside the connector's retry budget must be ridden out in one run. Faults that
outlast it (a storm longer than ``retry.max_attempts``, revoked credentials) must end the run
*cleanly*: status ``failed``, the error naming the problem, the pages already written kept
with their checkpoint, and a rerun that completes the stream with exact counts.

Paged streams get the fault once their first page has arrived, so a failure happens
mid-stream: that page must be written and checkpointed, and the rerun must resume after it.
One-page and for-each (CV parser) streams get it before the first request.

Connectors are discovered like the contract suite: a new connector is covered without writing
a test. Retry waits and timeouts are shortened on the connector object (never in its file) so
the suite stays fast; the attempt budget (`retry.max_attempts`) and the breaker's failure
count stay the connector's own.
"""

import dataclasses
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from integration_pipelines.canonical.tables import ENTITY_TABLES, sync_runs, sync_state
from integration_pipelines.connections import ConnectionStore
from integration_pipelines.resources.errors import (
    AuthenticationFailed,
    MalformedResponse,
    PartnerError,
    PartnerUnavailable,
    RateLimited,
)
from integration_pipelines.sync.runner import SyncReport
from tests.contract.test_connector_contract import STREAMS, Contract

WAIT = 0.05  # seconds: retry backoff and the partner's stated Retry-After, both capped to this
TIMEOUT = 0.3  # seconds: the client timeout in the timeout tests; `slow` answers take longer
SLOW = TIMEOUT + 0.3


@pytest.fixture
def db(request) -> sa.Engine:
    """SQLite; tests that parametrise `db` indirectly also run on PostgreSQL."""
    name = getattr(request, "param", "sqlite")
    return request.getfixturevalue("engine" if name == "sqlite" else "pg_engine")


@dataclasses.dataclass
class FaultCase(Contract):
    """A contract case whose connector retries quickly and can arm faults mid-stream."""

    def __post_init__(self) -> None:
        self.fast(initial_backoff_seconds=WAIT / 2, max_backoff_seconds=WAIT, breaker_reset_seconds=1)
        super().__post_init__()

    def fast(self, **retry: float) -> None:
        """Change the connector's retry policy for this test only (the YAML is untouched).

        Retries may also go back to back: the client's request spacing (SAP Fieldglass: one
        call a second) is not what these tests are about.
        """
        spec = self.connector.spec
        update: dict = {"retry": spec.retry.model_copy(update=retry)}
        if spec.rate_limit is not None:
            burst = max(spec.rate_limit.burst, 20)
            update["rate_limit"] = spec.rate_limit.model_copy(update={"burst": burst})
        self.connector = dataclasses.replace(self.connector, spec=spec.model_copy(update=update))

    def armed(self) -> list[dict]:
        """Faults still armed for this case's tenant (other tests' tenants may leave theirs)."""
        return [f for f in self.sim.faults.active() if f["tenant"] == self.tenant]

    @property
    def attempts(self) -> int:
        return self.connector.spec.retry.max_attempts

    @property
    def page_size(self) -> int:
        pagination = self.spec.pagination or self.connector.spec.pagination
        return pagination.page_size

    @property
    def data_path(self) -> str:
        """A part of the data endpoint's path, so transport faults skip the token endpoint."""
        return self.spec.request.path

    def inject(self, kind: str, count: int = 1, **params) -> None:
        path = self.data_path if kind in ("rate_limit", "server_error", "slow", "down") else None
        self.sim.faults.inject(kind, count, tenant=self.tenant, path_contains=path, **params)

    def sync_with(self, arm: Callable[[], None]) -> SyncReport:
        """Sync, arming the fault once page 1 has arrived (paged streams) or before the run."""
        if not self.paginated:
            arm()
            return self.sync()
        armed: list[bool] = []

        def after_first_page(message: str) -> None:
            if not armed and ": page 1:" in message:
                armed.append(True)
                arm()

        report = self.sync(progress=after_first_page)
        assert armed, "the stream finished before its first page was reported"
        return report

    # ---------------------------------------------------------------- what the ATS holds

    def last_run(self) -> sa.Row:
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sync_runs)
                .where(sync_runs.c.connection_id == self.connection_id, sync_runs.c.stream == self.stream)
                .order_by(sync_runs.c.id.desc())
                .limit(1)
            ).one()

    def state(self) -> sa.Row:
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sync_state).where(
                    sync_state.c.connection_id == self.connection_id, sync_state.c.stream == self.stream
                )
            ).one()


@pytest.fixture(params=STREAMS)
def case(request, db, vault, sandbox, tenant, vault_key) -> FaultCase:
    connector, stream = request.param
    sim = sandbox.simulators[connector.name]
    made = FaultCase(connector, stream, ConnectionStore(db, vault), sandbox, tenant, vault_key)
    yield made
    sim.faults.clear()
    sim.unrevoke(tenant)


# -------------------------------------------------------------------- shared assertions


def assert_complete(case: FaultCase, report: SyncReport) -> None:
    """The stream is whole: succeeded, and rows == links == the partner's count, no rejects."""
    assert report.status == "succeeded" and report.error is None
    assert case.rows() == case.links() == case.expected()
    assert case.quarantined() == []
    run = case.last_run()
    assert run.status == "succeeded" and run.error is None
    state = case.state()
    assert state.checkpoint is None and state.last_error is None


def assert_clean_failure(
    case: FaultCase, error: BaseException, kind: type[PartnerError], *phrases: str
) -> int:
    """Failed with a clear, secret-free message; what was committed is whole and checkpointed.

    Returns how many records the failed run left written: whole pages only (at most what came
    before the fault), each with its link, and a checkpoint to resume from when there are any.
    """
    assert isinstance(error, kind), f"expected {kind.__name__}, got {type(error).__name__}: {error}"
    message = str(error)
    for phrase in (case.connector.name, case.connection_id, *phrases):
        assert phrase in message, f"{phrase!r} missing from the error: {message}"
    for secret in case.secrets.values():
        assert secret not in message
    run = case.last_run()
    assert run.status == "failed" and run.error == message
    state = case.state()
    assert state.last_error == message and state.last_success_at is None
    written = case.links()
    assert case.rows() == written == run.inserted  # no record without its link, nothing doubled
    if case.paginated:  # the fault came after page 1: that page is kept, whole pages only
        assert case.page_size <= written < case.expected() and written % case.page_size == 0
    else:
        assert written == 0  # one page, or one batch of documents: all or nothing
    assert (state.checkpoint is not None) == bool(written)  # resumable where it stopped
    return written


def assert_rerun_completes(case: FaultCase, written: int) -> SyncReport:
    """The rerun resumes where the failed run stopped and writes exactly the rest."""
    report = case.sync()
    assert_complete(case, report)
    assert report.resumed == bool(written)
    assert report.counts.inserted == case.expected() - written
    return report


def fail_then_recover(
    case: FaultCase, kind: str, params: dict, error: type[PartnerError], *phrases: str, tail: int = 1
) -> None:
    """`kind` on `attempts + tail` requests in a row: the run fails cleanly on the first
    `attempts`, the rerun rides out the `tail` still armed and completes."""
    storm = case.attempts + tail
    before = case.sim.stats.faults_applied[kind]
    with pytest.raises(PartnerError) as failed:
        case.sync_with(lambda: case.inject(kind, storm, **params))
    written = assert_clean_failure(case, failed.value, error, *phrases)
    assert_rerun_completes(case, written)
    assert case.sim.stats.faults_applied[kind] - before == storm and case.armed() == []


def ride_out(case: FaultCase, arm: Callable[[], None]) -> SyncReport:
    report = case.sync_with(arm)
    assert_complete(case, report)
    assert report.counts.inserted == case.expected() and not report.resumed
    return report


# -------------------------------------------------------------------- 429 storms, 5xx, downtime, timeouts


def test_429_storm_outlasting_the_retry_budget_fails_cleanly_and_the_rerun_rides_out_its_tail(
    case: FaultCase,
) -> None:
    fail_then_recover(
        case,
        "rate_limit",
        {"retry_after": WAIT},
        RateLimited,
        "still rate limited (HTTP 429)",
        f"after {case.attempts} attempts",
        "re-run later",
        tail=2,
    )


def test_5xx_burst_within_the_retry_budget_is_ridden_out(case: FaultCase) -> None:
    """500, 502 (a gateway: no body), 503 and a bare 503 `down` on one request, then success."""
    before = dict(case.sim.stats.faults_applied)

    def arm() -> None:
        for status in (500, 502, 503):
            case.inject("server_error", 1, status=status)
        case.inject("down", case.attempts - 4)

    ride_out(case, arm)
    applied = case.sim.stats.faults_applied
    assert applied["server_error"] - before.get("server_error", 0) == 3
    assert applied["down"] - before.get("down", 0) == case.attempts - 4


@pytest.mark.parametrize(
    "db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_partner_down_longer_than_the_retry_budget_fails_cleanly_then_recovers(case: FaultCase) -> None:
    fail_then_recover(
        case,
        "down",
        {},
        PartnerUnavailable,
        "kept failing (HTTP 503)",
        f"for {case.attempts} attempts",
        "try again later",
    )


def test_partner_slower_than_the_timeout_fails_cleanly_then_recovers(case: FaultCase) -> None:
    case.fast(timeout_seconds=TIMEOUT)
    fail_then_recover(
        case,
        "slow",
        {"seconds": SLOW},
        PartnerUnavailable,
        f"timed out ({TIMEOUT:g}s) on all {case.attempts} attempts",
        "raise retry.timeout_seconds",
    )


def test_slow_token_endpoint_times_out_at_the_connectors_timeout(case: FaultCase) -> None:
    """The token request keeps the connector's timeout (it used to wait a fixed 30 s)."""
    if not case.uses_tokens:
        pytest.skip(f"{case.connector.name} authenticates without tokens")
    case.fast(timeout_seconds=TIMEOUT)
    token_path = case.connector.spec.auth.token_url
    case.sim.faults.inject("slow", 2, tenant=case.tenant, path_contains=token_path, seconds=5)
    started = time.monotonic()
    ride_out(case, lambda: None)
    assert time.monotonic() - started < 5  # neither slow answer was waited for
    assert case.armed() == []


# -------------------------------------------------------------------- tokens and credentials


def test_expired_token_is_renewed_once(case: FaultCase) -> None:
    if not case.uses_tokens:
        pytest.skip(f"{case.connector.name} authenticates without tokens")
    issued, expired = case.sim.stats.tokens_issued, case.sim.stats.faults_applied["expire_token"]
    ride_out(case, lambda: case.inject("expire_token", 1))
    assert case.sim.stats.faults_applied["expire_token"] - expired == 1
    assert case.sim.stats.tokens_issued - issued >= 2  # the first token and its renewal


@pytest.mark.parametrize(
    "db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_revoked_credentials_fail_cleanly_and_a_rerun_after_the_fix_completes(case: FaultCase) -> None:
    """The partner revokes the credentials mid-stream; a botched fix (a wrong secret) changes
    nothing; the right credentials complete the stream from where it stopped."""
    with pytest.raises(PartnerError) as failed:
        case.sync_with(lambda: case.sim.revoke(case.tenant))
    written = assert_clean_failure(
        case, failed.value, AuthenticationFailed, "refused the credentials", "revoked"
    )
    assert failed.value.failure_type == "config_error" and not failed.value.is_transient

    case.sim.unrevoke(case.tenant)  # the partner issues the access again...
    name = case.connector.spec.credential_names[-1]  # ...but the secret is typed in wrong
    case.store.set_credential(case.connection_id, name, "not-the-real-secret")
    with pytest.raises(AuthenticationFailed) as again:
        case.sync()
    assert "refused the credentials" in str(again.value) and "not-the-real-secret" not in str(again.value)
    assert case.last_run().status == "failed" and case.rows() == case.links() == written

    case.store.set_credential(case.connection_id, name, case.secrets[name])
    assert_rerun_completes(case, written)


# -------------------------------------------------------------------- bodies: truncated, drifted, repeated


def test_truncated_page_on_every_attempt_fails_cleanly_then_recovers(case: FaultCase) -> None:
    fmt = (case.spec.format or "json").upper()
    fail_then_recover(
        case, "malformed_page", {}, MalformedResponse, f"not valid {fmt}", "truncated or corrupted", "re-run"
    )


def test_schema_drift_keeps_every_record(case: FaultCase) -> None:
    """Every answer gains an unknown field and loses an optional one: nothing is rejected."""
    ride_out(case, lambda: case.inject("schema_drift", 10_000))
    assert case.sim.stats.faults_applied["schema_drift"] >= 1


def test_duplicate_page_is_neither_skipped_nor_doubled(case: FaultCase) -> None:
    """A paged stream gets its previous page again; a parser answers a document with the
    previous document's result (armed after the first answer, or there is nothing to repeat).

    Not covered, because it does not end well today: a parser replaying the *previous run's*
    last answer as the first answer of the next run is not detected (the runner compares
    answers within one run only), so that document keeps another document's result.
    """
    before = case.sim.stats.faults_applied["duplicate_page"]
    after = 1 if case.for_each else 0
    ride_out(case, lambda: case.sim.faults.inject("duplicate_page", 1, tenant=case.tenant, after=after))
    assert case.sim.stats.faults_applied["duplicate_page"] - before == 1
    if case.for_each:  # every document has its own result, not its neighbour's
        table = ENTITY_TABLES[case.spec.entity]
        with case.store.engine.connect() as conn:
            emails = conn.execute(sa.select(table.c.email).where(table.c.tenant_id == case.tenant))
            assert len(set(emails.scalars())) == case.expected()
