"""Webhook ingest benchmark: signed events into the receiver, against a bare uvicorn endpoint.

For each worker count (default 1) and each of --rounds rounds (default 3), the receiver runs
under uvicorn in a subprocess on a free 127.0.0.1 port, against a fresh temporary SQLite file
(and, with --database-url, against a throwaway PostgreSQL database created on that server and
dropped at the end). This process then sends --events signed events (default 10,000, 10% of
them repeats) over --concurrency raw keep-alive connections (default 50), and reports events/s,
p50/p99 latency, the CPU time per request of server and client, and whether the inbox holds
exactly the unique events sent. The same load, with the same client, against a uvicorn app that
only reads the body and answers 202 gives the ratio to "HTTP alone". Each setup ends with the
median round and the verdict against issue 6's goal (>= 2,000 durable events/s, p99 < 50 ms).

The load generator is cheap on purpose (2 cores are shared with the server): asyncio streams
(uvloop when installed), each request's bytes built and signed before the clock starts, and a
minimal HTTP/1.1 response reader (status line, Content-Length or chunked, Connection: close).

    python benchmarks/webhook_ingest.py                                   # SQLite
    python benchmarks/webhook_ingest.py --database-url "$(bash scripts/ensure_postgres.sh)"

Everything stays on loopback; sending stops after --max-seconds per run whatever the count.
"""

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # loopback only, by design
MAX_EVENTS = 100_000
CONNECTOR = "bench_hook"
RECEIVER = "integration_pipelines.webhooks.receiver:app_from_env"
SECRET = "bench-webhook-secret"


# ---------------------------------------------------------------- the bare endpoint (runs in uvicorn)


async def bare_app(scope, receive, send) -> None:  # noqa: ANN001
    """An ASGI app that reads the request body and answers 202: the cost of HTTP alone."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/health":
        status, body = 200, b'{"status":"ok"}'
    else:
        status, body = 202, b'{"status":"accepted"}'
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- setup


@dataclass
class Target:
    """A database prepared for a run: where the receiver writes, and the connection to post to."""

    database_url: str
    connection_id: str
    label: str
    env: dict[str, str]


def _connector_dir(root: Path) -> Path:
    import yaml

    folder = root / "connectors" / CONNECTOR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "connector.yaml").write_text(
        yaml.safe_dump(
            {
                "name": CONNECTOR,
                "title": "Benchmark partner",
                "category": "other",
                "base_url": "https://partner.example",
                "auth": {"kind": "none"},
                "streams": {
                    "jobs": {
                        "direction": "inbound",
                        "entity": "job",
                        "request": {"path": "/jobs"},
                        "primary_key": "id",
                        "mapping": {"external_id": "id", "title": "title"},
                    }
                },
                "webhooks": {
                    "signature": {"scheme": "hmac", "header": "X-Signature", "prefix": "sha256="},
                    "event_id": "eventId",
                    "event_type": "event",
                    "occurred_at": "occurredAt",
                    "routes": {"jobPosting.updated": {"stream": "jobs"}},
                },
            }
        )
    )
    return root / "connectors"


def prepare(database_url: str, workdir: Path, label: str) -> Target:
    """Migrate, then add a fresh tenant's connection with its webhook secret."""
    from integration_pipelines.connections import ConnectionStore
    from integration_pipelines.connectors.registry import load_connector_file
    from integration_pipelines.db.engine import create_db_engine, migrate
    from integration_pipelines.resources.vault import CredentialVault

    connectors = _connector_dir(workdir)
    loaded = load_connector_file(connectors / CONNECTOR)
    key = CredentialVault.generate_key()
    engine = create_db_engine(database_url)
    try:
        migrate(engine)
        store = ConnectionStore(engine, CredentialVault([key]))
        connection = store.add(f"bench{uuid.uuid4().hex[:8]}", loaded.spec)
        store.set_credential(connection.id, "webhook_secret", SECRET)
    finally:
        engine.dispose()
    env = {
        **os.environ,
        "INTEGRATION_DATABASE_URL": database_url,
        "INTEGRATION_VAULT_KEYS": key,
        "INTEGRATION_CONNECTORS_DIR": str(connectors),
    }
    return Target(database_url, connection.id, label, env)


def inbox_count(target: Target) -> int:
    import sqlalchemy as sa

    from integration_pipelines.db.engine import create_db_engine

    engine = create_db_engine(target.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM inbox WHERE connection_id = :c"), {"c": target.connection_id}
            ).scalar_one()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a subprocess, stopped on exit."""

    def __init__(self, app: str, workers: int, env: dict[str, str], factory: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        args = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(self.port)]
        args += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        args += ["--app-dir", str(Path(__file__).parent)]
        if factory:
            args.append("--factory")
        self._log = tempfile.TemporaryFile("w+")  # a file, not a pipe: it never fills up and blocks
        self.proc = subprocess.Popen(args, env=env, stderr=self._log)
        self.per_commit: list[float] = []  # events per transaction, per worker (from its log)

    def __enter__(self) -> "Server":
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("server did not come up")

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the server and its worker processes (Linux /proc; else None)."""
        stats: dict[int, tuple[int, int]] = {}
        try:
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:  # the process ended meanwhile
                    continue
                # after "pid (comm)" come state, ppid, ...; utime and stime are fields 14 and 15
                stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            return None
        tree = {self.proc.pid}
        grown = True
        while grown:
            children = {pid for pid, (ppid, _) in stats.items() if ppid in tree} - tree
            tree |= children
            grown = bool(children)
        return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.seek(0)
        for line in self._log:
            found = re.search(r"inbox group commit: (\d+) events in (\d+) transactions", line)
            if found:
                self.per_commit.append(int(found[1]) / int(found[2]))
            else:
                sys.stderr.write(line)  # anything else the server said
        self._log.close()


# ---------------------------------------------------------------- load


@dataclass
class Result:
    """One run's figures."""

    label: str
    sent: int
    seconds: float
    statuses: dict[int, int]
    latencies: list[float]
    unique_sent: int
    server_cpu: float | None = None  # CPU seconds the server processes used during the run
    client_cpu: float | None = None  # CPU seconds the load generator used during the run
    per_commit: list[float] | None = None  # the receiver's events per transaction, per worker

    @property
    def cpu_ms_per_request(self) -> float | None:
        return self.server_cpu * 1000 / self.sent if self.server_cpu is not None and self.sent else None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


def make_requests(path: str, events: int, duplicate_share: float, seed: int) -> tuple[list[bytes], int]:
    """Complete HTTP/1.1 requests, signed and encoded up front; and the number of unique events."""
    from integration_pipelines.connectors.spec import Signature
    from integration_pipelines.webhooks.signatures import sign

    spec = Signature(scheme="hmac", header="X-Signature", prefix="sha256=")
    rng = random.Random(seed)
    unique = max(1, round(events * (1 - duplicate_share)))
    ids = [f"evt-{uuid.uuid4().hex}" for _ in range(unique)]
    order = ids + [rng.choice(ids) for _ in range(events - unique)]
    rng.shuffle(order)
    encoded = {}
    for event_id in ids:
        event = {
            "eventId": event_id,
            "event": "jobPosting.updated",
            "occurredAt": "2026-01-02T03:04:05Z",
            "jobPostingUid": f"JP-{rng.randrange(10**6)}",
            "changes": {"status": "OPEN", "openings": rng.randrange(1, 5), "title": "Senior Data Engineer"},
        }
        body = json.dumps(event).encode()
        headers = {
            "Host": HOST,
            "Content-Type": "application/json",
            **sign(spec, secrets={"webhook_secret": SECRET}, body=body).headers,
            "Content-Length": str(len(body)),
        }
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        encoded[event_id] = head.encode("latin-1") + body
    return [encoded[event_id] for event_id in order], unique


class _Closed(Exception):
    """The server closed the connection (or asked to)."""


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one request, read its response: (status, whether the connection stays open).

    Minimal HTTP/1.1: status line, Content-Length (or Transfer-Encoding: chunked), Connection.
    """
    writer.write(request)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed() from exc
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep_alive


async def send_all(
    port: int, requests: list[bytes], concurrency: int, max_seconds: float, label: str
) -> Result:
    """`concurrency` raw keep-alive connections (asyncio streams) pulling from one list of requests.

    The requests are complete bytes made beforehand, so the client's cost per request is one
    write, one read of the head and one of the body: the server, not the client, is measured.
    """
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    sent: set[bytes] = set()
    position = 0
    start = time.perf_counter()
    deadline = start + max_seconds
    cpu_start = time.process_time()

    async def connection() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while position < len(requests) and time.perf_counter() < deadline:
                request = requests[position]
                position += 1
                t0 = time.perf_counter()
                try:
                    status, keep_alive = await asyncio.wait_for(_exchange(reader, writer, request), 30)
                except _Closed:  # not answered: reconnect, count it as a failure
                    status, keep_alive = 599, False
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                sent.add(request)
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    result = Result(label, len(latencies), seconds, statuses, latencies, len(sent))
    result.client_cpu = time.process_time() - cpu_start
    return result


def run_load(port: int, requests: list[bytes], concurrency: int, max_seconds: float, label: str) -> Result:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(send_all(port, requests, concurrency, max_seconds, label))
    return uvloop.run(send_all(port, requests, concurrency, max_seconds, label))


def measured(
    server: Server, warmup: list, requests: list, concurrency: int, max_seconds: float, label: str
) -> Result:
    """A warm-up (imports, caches, pools), then the timed run with the server's CPU time over it."""
    run_load(server.port, warmup, concurrency, max_seconds, "warm-up")
    before = server.cpu_seconds()
    result = run_load(server.port, requests, concurrency, max_seconds, label)
    after = server.cpu_seconds()
    if before is not None and after is not None:
        result.server_cpu = after - before
    return result


def _cpu(result: Result) -> str:
    value = result.cpu_ms_per_request
    text = f"server CPU {value:4.2f} ms/req" if value is not None else ""
    if result.client_cpu is not None and result.sent:
        text += f", client {result.client_cpu * 1000 / result.sent:4.2f}"
    return text


def report(result: Result, bare: Result, stored: int | None) -> bool:
    """Print one round (receiver, then bare); True if the inbox holds exactly the unique events."""
    ok = sum(n for s, n in result.statuses.items() if 200 <= s < 300)
    check = ""
    if stored is not None:
        verdict = "OK" if stored == result.unique_sent else "MISMATCH"
        check = f"inbox {stored}/{result.unique_sent} unique {verdict}"
    statuses = dict(sorted(result.statuses.items()))
    print(
        f"  {result.label:<22} {result.rate:6.0f} ev/s   p50 {result.percentile(50):5.1f} ms  "
        f"p99 {result.percentile(99):5.1f} ms  {_cpu(result)}  2xx {ok}/{result.sent} {statuses}  {check}"
        + (f"  events/commit {'+'.join(f'{n:.1f}' for n in result.per_commit)}" if result.per_commit else "")
    )
    ratio = f"receiver/bare {result.rate / bare.rate:.2f}"
    if result.cpu_ms_per_request and bare.cpu_ms_per_request:
        ratio += f", server CPU x{result.cpu_ms_per_request / bare.cpu_ms_per_request:.1f}"
    print(
        f"  {'  bare uvicorn':<22} {bare.rate:6.0f} req/s  p50 {bare.percentile(50):5.1f} ms  "
        f"p99 {bare.percentile(99):5.1f} ms  {_cpu(bare)}  -> {ratio}"
    )
    return stored == result.unique_sent and not any(s >= 300 for s in result.statuses)


GOAL_RATE = 2000  # events/s, durable
GOAL_P99_MS = 50


def summary(label: str, rounds: list[tuple[Result, Result, bool]]) -> bool:
    """The median round's figures, the goal's verdict; True if every round stored exactly right."""
    median = statistics.median
    rates = [r.rate for r, _, _ in rounds]
    p99s = [r.percentile(99) for r, _, _ in rounds]
    bare = median(b.rate for _, b, _ in rounds)
    correct = all(ok for _, _, ok in rounds)
    rate, p99 = median(rates), median(p99s)
    met = rate >= GOAL_RATE and p99 < GOAL_P99_MS and correct
    print(
        f"= {label}: median of {len(rounds)} rounds {rate:.0f} ev/s "
        f"(range {min(rates):.0f}-{max(rates):.0f}), "
        f"p50 {median(r.percentile(50) for r, _, _ in rounds):.1f} ms, p99 {p99:.1f} ms "
        f"(range {min(p99s):.1f}-{max(p99s):.1f}); bare uvicorn {bare:.0f} req/s, ratio {rate / bare:.2f}; "
        f"inbox = unique sent in every round: {'yes' if correct else 'NO'}; "
        f"goal >= {GOAL_RATE} ev/s durable, p99 < {GOAL_P99_MS} ms: {'met' if met else 'NOT met'}"
    )
    return correct


def throwaway_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty PostgreSQL database beside `server_url`'s (the role needs CREATEDB), and
    the function that drops it."""
    import sqlalchemy as sa

    from integration_pipelines.db.engine import normalise_url

    url = sa.make_url(normalise_url(server_url))
    name = f"webhook_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help=f"requests per run (max {MAX_EVENTS:,})")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent connections (max 200)")
    parser.add_argument("--workers", default="1", help="uvicorn worker counts to run, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per setup (receiver, then bare)")
    parser.add_argument(
        "--duplicates", type=float, default=0.1, help="share of requests that repeat an event"
    )
    parser.add_argument("--max-seconds", type=float, default=60, help="stop sending after this long per run")
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL server to also run against: a throwaway database is created there and dropped",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="the receiver's SQLite synchronous (FULL: fsync per commit, durable on power loss)",
    )
    args = parser.parse_args()
    os.environ["INTEGRATION_WEBHOOK_SQLITE_SYNCHRONOUS"] = args.sqlite_synchronous  # to the servers
    if not 1 <= args.events <= MAX_EVENTS:
        parser.error(f"--events must be between 1 and {MAX_EVENTS}")
    if not 1 <= args.concurrency <= 200:
        parser.error("--concurrency must be between 1 and 200")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not 0 <= args.duplicates < 1:
        parser.error("--duplicates must be in [0, 1)")
    if not 1 <= args.max_seconds <= 600:
        parser.error("--max-seconds must be between 1 and 600")
    workers = [int(w) for w in args.workers.split(",")]
    if any(not 1 <= w <= 16 for w in workers):
        parser.error("--workers must be between 1 and 16")

    print(
        f"{args.events} events ({args.duplicates:.0%} repeats) per round, {args.concurrency} connections, "
        f"{os.cpu_count()} CPUs shared by client and server; SQLite synchronous={args.sqlite_synchronous}; "
        f"{_load()}"
    )
    failures = 0
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        databases: list[tuple[str, str | None]] = [("sqlite", None)]
        if args.database_url:
            databases.append(("postgres", args.database_url))
        for kind, server_url in databases:
            drop = None
            if server_url:
                url, drop = throwaway_database(server_url)
            try:
                for count in workers:
                    label = f"{kind}, {count} worker{'s' * (count > 1)}"
                    print(f"{label}:")
                    rounds = []
                    for number in range(args.rounds):
                        workdir = Path(tmp) / f"{kind}-{count}-{number}"
                        workdir.mkdir()
                        database_url = url if server_url else f"sqlite:///{workdir / 'ats.db'}"
                        target = prepare(database_url, workdir, f"round {number + 1}")
                        path = f"/webhooks/{target.connection_id}"
                        warmup, _ = make_requests(path, min(200, args.events), 0, seed=100 + number)
                        requests, _ = make_requests(path, args.events, args.duplicates, seed=number)
                        load = (args.concurrency, args.max_seconds)
                        with Server(RECEIVER, count, target.env, factory=True) as server:
                            result = measured(server, warmup, requests, *load, target.label)
                        result.per_commit = server.per_commit
                        stored = inbox_count(target) - len(warmup)
                        with Server("webhook_ingest:bare_app", count, dict(os.environ)) as server:
                            bare = measured(server, warmup, requests, *load, "bare")
                        rounds.append((result, bare, report(result, bare, stored)))
                    failures += not summary(label, rounds)
            finally:
                if drop is not None:
                    drop()
    print(_load())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
