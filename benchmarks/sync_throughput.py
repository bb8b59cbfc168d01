"""Sync throughput benchmark: our full sync against dlt and a bare HTTP fetch (issue 6).

A paged JSON API runs on 127.0.0.1 (stdlib ThreadingHTTPServer in a thread):
`GET /items?page=N&page_size=1000` -> `{"data": [...8 flat fields...], "next": <url|null>, "total": N}`,
rows generated deterministically from their index (page bodies are built once, before timing,
so the server costs every contender the same).

Contenders, run alternately for --rounds rounds and timed by wall clock:

1. bare fetch  - httpx paging through the API, json-decoding each page, nothing else;
2. ours        - a connector built in code (next_link pagination on `next`, records `data`,
                 incremental on `updated_at` via `updated_since`, entity `job`, typed mapping),
                 a connection via ConnectionStore, and `sync_stream(..., allow_loopback=True)`:
                 extract, map, pandera validation, idempotent upsert through record links,
                 checkpoint per written batch; a fresh tenant per round, so every round
                 inserts all records. After each round's full sync, 1% of the rows change at
                 the partner (untimed) and that connection's incremental sync is timed;
3. dlt replace - `rest_api_source` (json_link paginator on `next`) into the same PostgreSQL,
                 a fresh schema per round, loader_file_format="csv", write_disposition="replace";
4. dlt merge   - the same with write_disposition="merge" on primary key `id` (ours is an upsert).

The PostgreSQL target is a throwaway database created for the run and dropped afterwards
(`--database-url`, else `bash scripts/ensure_postgres.sh`). Peak RSS of ours is measured in a
child process (VmHWM of /proc/self/status, after imports and after one sync),
for --records and again for --memory-records (default 1,000,000) against a second API.
`--profile` also runs ours once under cProfile in a child and prints the top 15 by cumulative time.

    .venv/bin/python benchmarks/sync_throughput.py [--records 100000] [--rounds 3]
        [--memory-records 1000000] [--database-url URL] [--profile]

Everything stays on loopback; records are capped at MAX_RECORDS and each contender run at
--max-seconds.
"""

import argparse
import atexit
import bisect
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

HOST = "127.0.0.1"  # loopback only, by design
PAGE_SIZE = 1000
MAX_RECORDS = 1_000_000
ROOT = Path(__file__).resolve().parent.parent
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "IT", "CA"]

_TMP = tempfile.mkdtemp(prefix="sync_bench_")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("DLT_DATA_DIR", os.path.join(_TMP, "dlt_data"))
os.environ.setdefault("DLT_PROJECT_DIR", os.path.join(_TMP, "dlt_project"))


# ---------------------------------------------------------------- the API


def make_row(i: int) -> dict:
    return {
        "id": f"R{i:08d}",
        "email": f"user{i}@example.com",
        "name": f"Item number {i}",
        "amount": round((i * 37) % 100_000 / 100, 2),
        "active": i % 3 != 0,
        "country": COUNTRIES[i % len(COUNTRIES)],
        "created_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
        "updated_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{(i * 7) % 60:02d}:00Z",
    }


class PagedApi:
    """Serves `records` rows in pages of PAGE_SIZE; full-sync bodies are built once up front.

    `updated_since=<ISO>` returns only rows with `updated_at >= since`, in `updated_at` order,
    from an index kept up to date by `change` (pages built on request: after `change`, few rows
    match). `change(n)` edits n rows the way a partner would (new name, later `updated_at`) and
    rebuilds the full-sync pages and the index, untimed.
    """

    def __init__(self, records: int):
        self.records = records
        self.server = ThreadingHTTPServer((HOST, 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://{HOST}:{self.server.server_address[1]}"
        self.pages = (records + PAGE_SIZE - 1) // PAGE_SIZE
        self.rows = [make_row(i) for i in range(records)]
        self.bodies: dict[int, bytes] = {page: self._body(page) for page in range(1, self.pages + 1)}
        self.changes = 0
        self._index_updates()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _body(self, page: int, rows: list[dict] | None = None, since: str | None = None) -> bytes:
        rows = self.rows if rows is None else rows
        pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
        chunk = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        query = f"&updated_since={since}" if since else ""
        nxt = f"{self.base}/items?page={page + 1}&page_size={PAGE_SIZE}{query}" if page < pages else None
        return json.dumps({"data": chunk, "next": nxt, "total": len(rows)}).encode()

    def change(self, count: int) -> None:
        """Edit `count` rows spread over the stream: new name, `updated_at` after every other row."""
        self.changes += 1
        stamp = f"2027-01-01T00:{self.changes % 60:02d}:00Z"
        step = max(1, self.records // count)
        touched = set()
        for i in range(0, self.records, step)[:count]:
            self.rows[i] = {
                **self.rows[i],
                "name": f"Item number {i} (edit {self.changes})",
                "updated_at": stamp,
            }
            touched.add(i // PAGE_SIZE + 1)
        for page in touched:
            self.bodies[page] = self._body(page)
        self._index_updates()

    def _index_updates(self) -> None:
        """Rows ordered by `updated_at`, as a partner's index would serve `updated_since`."""
        self.by_update = sorted(self.rows, key=lambda r: (r["updated_at"], r["id"]))
        self.update_keys = [r["updated_at"] for r in self.by_update]

    def updated_since(self, since: str) -> list[dict]:
        return self.by_update[bisect.bisect_left(self.update_keys, since) :]  # ISO 8601 Z sorts as text

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                q = parse_qs(url.query)
                if url.path != "/items" or int(q.get("page_size", [PAGE_SIZE])[0]) != PAGE_SIZE:
                    self.send_error(404)
                    return
                page = int(q.get("page", ["1"])[0])
                since = q.get("updated_since", [None])[0]
                if since:
                    body = api._body(page, api.updated_since(since), since)
                else:
                    body = api.bodies.get(page, b'{"data": [], "next": null}')
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        return Handler

    @property
    def first_url(self) -> str:
        return f"{self.base}/items?page=1&page_size={PAGE_SIZE}"

    def __enter__(self) -> "PagedApi":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the database


def admin_url(given: str | None) -> str:
    if given:
        return given
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_postgres.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


class ThrowawayDatabase:
    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        self.admin = sa.engine.make_url(url)
        if self.admin.drivername in ("postgresql", "postgres"):
            self.admin = self.admin.set(drivername="postgresql+psycopg2")
        self.name = f"sync_bench_{uuid.uuid4().hex[:10]}"
        self.url = self.admin.set(database=self.name)

    def __enter__(self) -> "ThrowawayDatabase":
        eng = self.sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(self.sa.text(f'create database "{self.name}"'))
        eng.dispose()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        eng = self.sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(self.sa.text(f'drop database if exists "{self.name}" with (force)'))
        eng.dispose()

    @property
    def sqlalchemy_url(self) -> str:
        return self.url.render_as_string(hide_password=False)

    @property
    def dsn(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)


# ---------------------------------------------------------------- contenders


def bare_fetch(api_url: str) -> int:
    import httpx

    n = 0
    url = api_url
    with httpx.Client(timeout=30) as client:
        while url:
            body = client.get(url).raise_for_status().json()
            n += len(body["data"])
            url = body["next"]
    return n


def bench_connector(base: str):
    from integration_pipelines.connectors.registry import LoadedConnector
    from integration_pipelines.connectors.spec import Connector

    spec = Connector.model_validate(
        {
            "name": "bench_items",
            "title": "Benchmark items API",
            "category": "other",
            "base_url": base,
            "auth": {"kind": "none"},
            "retry": {"max_attempts": 2, "initial_backoff_seconds": 0, "max_backoff_seconds": 0},
            "pagination": {"kind": "next_link", "next_path": "next"},
            "streams": {
                "items": {
                    "direction": "inbound",
                    "entity": "job",
                    "request": {"path": "/items", "params": {"page": "1", "page_size": str(PAGE_SIZE)}},
                    "records": "data",
                    "primary_key": "id",
                    "incremental": {"cursor_field": "updated_at", "param": "updated_since"},
                    "mapping": {
                        "external_id": "id",
                        "title": {"path": "name", "type": "string"},
                        "status": {
                            "path": "active",
                            "map": {"true": "open", "True": "open", "false": "closed", "False": "closed"},
                        },
                        "country_code": "country",
                        "client_reference": "email",
                        "bill_rate_max": {"path": "amount", "type": "number"},
                        "remote_updated_at": {"path": "updated_at", "type": "datetime"},
                    },
                }
            },
        }
    )
    return LoadedConnector(spec=spec, path=Path("<benchmark>/bench_items/connector.yaml"))


class Ours:
    """Our full sync into the throwaway database; one fresh tenant per call."""

    def __init__(self, db_url: str, base: str, migrate: bool = True):
        from integration_pipelines.connections import ConnectionStore
        from integration_pipelines.db.engine import create_db_engine
        from integration_pipelines.db.engine import migrate as run_migrations
        from integration_pipelines.resources.vault import CredentialVault

        self.engine = create_db_engine(db_url)
        if migrate:
            run_migrations(self.engine)
        self.vault = CredentialVault([CredentialVault.generate_key()])
        self.store = ConnectionStore(self.engine, self.vault)
        self.connector = bench_connector(base)
        self.base = base

    def run(self, tenant: str):
        """A first (full) sync for a new connection of `tenant`."""
        connection = self.store.add(tenant, self.connector.spec, {"base_url": self.base})
        return self.resync(connection.id)

    def resync(self, connection_id: str):
        """The next sync of a connection: incremental from its committed cursor."""
        from integration_pipelines.sync.service import sync_stream

        return sync_stream(
            self.engine, self.vault, connection_id, "items", connector=self.connector, allow_loopback=True
        )

    def count(self, tenant: str) -> int:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return conn.execute(
                sa.text("select count(*) from job where tenant_id = :t"), {"t": tenant}
            ).scalar()


def dlt_run(dsn: str, base: str, dataset: str, disposition: str, pipelines_dir: str) -> int:
    import dlt
    import sqlalchemy as sa
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {"base_url": base + "/", "paginator": {"type": "json_link", "next_url_path": "next"}},
            "resource_defaults": {"write_disposition": disposition},
            "resources": [
                {
                    "name": "items",
                    "primary_key": "id",
                    "endpoint": {
                        "path": "items",
                        "params": {"page": 1, "page_size": PAGE_SIZE},
                        "data_selector": "data",
                    },
                }
            ],
        }
    )
    pipe = dlt.pipeline(
        pipeline_name=dataset,
        destination=dlt.destinations.postgres(credentials=dsn),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
        progress=None,
    )
    pipe.run(source, loader_file_format="csv")
    eng = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://", 1))
    with eng.connect() as conn:
        n = conn.execute(sa.text(f'select count(*) from "{dataset}".items')).scalar()
    eng.dispose()
    return n


# ---------------------------------------------------------------- child: RSS / profile of ours


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM) in KiB.

    Not getrusage's ru_maxrss: on Linux that keeps the peak of the process image before
    exec, i.e. of the benchmark parent that forked us with all its page bodies in memory.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_main(args: argparse.Namespace) -> None:
    before = peak_rss_kib()
    ours = Ours(args.child_db, args.child_base, migrate=False)
    import pandera  # noqa: F401  (imported by the sync anyway; counted in the "after imports" figure)

    after_imports = peak_rss_kib()
    tenant = f"child_{uuid.uuid4().hex[:8]}"
    if args.profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        started = time.perf_counter()
        prof.enable()
        report = ours.run(tenant)
        prof.disable()
        seconds = time.perf_counter() - started
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(15)
        text = out.getvalue()
        prof_tot = io.StringIO()
        pstats.Stats(prof, stream=prof_tot).sort_stats("tottime").print_stats(15)
        text += "\n--- by tottime ---\n" + prof_tot.getvalue()
    else:
        started = time.perf_counter()
        report = ours.run(tenant)
        seconds = time.perf_counter() - started
        text = ""
    peak = peak_rss_kib()
    print(
        json.dumps(
            {
                "start_kib": before,
                "after_imports_kib": after_imports,
                "peak_kib": peak,
                "seconds": seconds,
                "inserted": report.counts.inserted,
                "rejected": report.counts.rejected,
                "profile": text,
            }
        )
    )


def run_child(db_url: str, base: str, profile: bool) -> dict:
    cmd = [sys.executable, __file__, "--child-db", db_url, "--child-base", base]
    if profile:
        cmd.append("--profile")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--database-url", default=os.environ.get("INTEGRATION_BENCH_DATABASE_URL"))
    p.add_argument("--no-merge", action="store_true", help="skip the dlt merge contender")
    p.add_argument("--profile", action="store_true", help="also profile one run of ours (cProfile)")
    p.add_argument("--max-seconds", type=float, default=600, help="stop after a run longer than this")
    p.add_argument(
        "--memory-records", type=int, default=1_000_000, help="records for the peak-memory run (0 = skip)"
    )
    p.add_argument("--child-db", help=argparse.SUPPRESS)
    p.add_argument("--child-base", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_db:
        child_main(args)
        return
    if not 0 < args.records <= MAX_RECORDS:
        p.error(f"--records must be between 1 and {MAX_RECORDS}")

    import warnings

    warnings.filterwarnings("ignore")
    url = admin_url(args.database_url)
    print(f"building {args.records} records in pages of {PAGE_SIZE} ...", flush=True)
    with PagedApi(args.records) as api, ThrowawayDatabase(url) as db:
        print(f"API {api.base}  database {db.name}", flush=True)
        # the fake partner's rows and page bodies share this process with the contenders: keep
        # them out of the garbage collector's scans, which a real partner's data never is in
        gc.freeze()
        ours = Ours(db.sqlalchemy_url, api.base)
        pipelines_dir = os.path.join(_TMP, "dlt_pipelines")

        def c_bare(r: int) -> int:
            return bare_fetch(api.first_url)

        def c_ours(r: int) -> int:
            tenant = f"bench_r{r}"
            report = ours.run(tenant)
            if report.counts.rejected:
                print(f"  ours: {report.counts.rejected} rejected!", flush=True)
            return ours.count(tenant)

        incremental: list[float] = []

        def incremental_round(r: int) -> None:
            """Change 1% at the partner, then time the next sync of round r's connection."""
            changed = max(1, args.records // 100)
            api.change(changed)
            started = time.perf_counter()
            report = ours.resync(f"bench_r{r}/bench_items")
            seconds = time.perf_counter() - started
            if (
                report.counts.updated != changed
                or report.counts.inserted
                or ours.count(f"bench_r{r}") != args.records
            ):
                raise SystemExit(f"incremental round {r}: {report.counts} for {changed} changed records")
            incremental.append(seconds)
            print(
                f"round {r}  {'ours incremental (1%)':24s} {seconds:7.2f} s  {report.records} fetched, "
                f"{report.counts.updated} updated, {report.counts.unchanged} unchanged",
                flush=True,
            )

        def c_dlt(disposition: str):
            def run(r: int) -> int:
                return dlt_run(db.dsn, api.base, f"dlt_{disposition}_r{r}", disposition, pipelines_dir)

            return run

        contenders = {
            "bare fetch (httpx)": c_bare,
            "ours (sync_stream)": c_ours,
            "dlt replace (csv)": c_dlt("replace"),
        }
        if not args.no_merge:
            contenders["dlt merge on id (csv)"] = c_dlt("merge")
        times: dict[str, list[float]] = {k: [] for k in contenders}
        # one untimed warm-up of each dlt / ours code path would hide import costs; the first
        # round's imports are excluded by importing up front instead:
        import dlt  # noqa: F401
        from dlt.sources.rest_api import rest_api_source  # noqa: F401

        for r in range(1, args.rounds + 1):
            for name, fn in contenders.items():
                started = time.perf_counter()
                n = fn(r)
                seconds = time.perf_counter() - started
                if n != args.records:
                    raise SystemExit(f"{name} round {r}: {n} records, expected {args.records}")
                times[name].append(seconds)
                print(f"round {r}  {name:24s} {seconds:7.2f} s  {n / seconds:9,.0f} rec/s", flush=True)
                if seconds > args.max_seconds:
                    raise SystemExit(f"{name} took {seconds:.0f} s > --max-seconds; stopping")
                if fn is c_ours:
                    incremental_round(r)

        rss = run_child(db.sqlalchemy_url, api.base, profile=False)
        prof = run_child(db.sqlalchemy_url, api.base, profile=True) if args.profile else None
        ours.engine.dispose()
    big = None
    if args.memory_records:
        print(f"building {args.memory_records} records for the peak-memory run ...", flush=True)
        with PagedApi(args.memory_records) as api, ThrowawayDatabase(url) as db:
            Ours(db.sqlalchemy_url, api.base).engine.dispose()  # migrate once, outside the child
            big = run_child(db.sqlalchemy_url, api.base, profile=False)
            if big["inserted"] != args.memory_records:
                raise SystemExit(f"peak-memory run inserted {big['inserted']} of {args.memory_records}")

    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: args.records / s for k, s in med.items()}
    bare, mine = rate["bare fetch (httpx)"], rate["ours (sync_stream)"]
    print()
    print(f"records={args.records} rounds={args.rounds} page_size={PAGE_SIZE} (median of rounds)")
    print(f"{'contender':26s} {'seconds':>8s} {'rec/s':>10s} {'all rounds (s)':>24s}")
    for k in contenders:
        runs = ", ".join(f"{s:.2f}" for s in times[k])
        print(f"{k:26s} {med[k]:8.2f} {rate[k]:10,.0f} {runs:>24s}")
    print()
    for k in contenders:
        if k.startswith("dlt"):
            ratio = mine / rate[k]
            print(f"ours / {k}: {ratio:.2f}x  (goal >= 2.5x: {'met' if ratio >= 2.5 else 'not met'})")
    share = mine / bare
    print(f"ours / bare fetch: {share:.1%}  (goal >= 35%: {'met' if share >= 0.35 else 'not met'})")
    print(
        f"ours peak RSS (child process, VmHWM): {rss['peak_kib'] / 1024:.0f} MiB "
        f"(after imports {rss['after_imports_kib'] / 1024:.0f} MiB; that run {rss['seconds']:.2f} s, "
        f"inserted {rss['inserted']}, rejected {rss['rejected']})"
    )
    full, inc = med["ours (sync_stream)"], statistics.median(incremental)
    print(
        f"ours incremental after changing 1% ({max(1, args.records // 100)} records): {inc:.3f} s median "
        f"({', '.join(f'{s:.3f}' for s in incremental)}) = {inc / full:.1%} of the full sync "
        f"(goal <= 5%: {'met' if inc / full <= 0.05 else 'not met'})"
    )
    if big:
        mib = big["peak_kib"] / 1024
        print(
            f"ours peak RSS for {args.memory_records:,} records: {mib:.0f} MiB "
            f"(after imports {big['after_imports_kib'] / 1024:.0f} MiB; {big['seconds']:.1f} s, "
            f"{args.memory_records / big['seconds']:,.0f} rec/s) (goal < 500 MB: "
            f"{'met' if big['peak_kib'] * 1024 < 500e6 else 'not met'})"
        )
    if prof:
        print(f"\ncProfile of one run of ours ({prof['seconds']:.2f} s under the profiler):")
        print(prof["profile"])


if __name__ == "__main__":
    main()
