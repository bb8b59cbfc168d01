"""Mapping overhead benchmark (issue 6, benchmark 3): our mapping engine + pandera validation
against a hand-written vectorised pandas function doing the same transformations.

Input: --rows Beeline job postings (default 1,000,000) in the shape the partner API returns them
(the project's Beeline simulator shape: `integration_pipelines/sandbox/beeline.py`), built once,
deterministically, from `sandbox.data.generate_requisitions` plus a seeded `random.Random`. Some
optional values are null (region every 20th, endDate every 50th, billRateMax every 40th row) and
every 10th `updatedAt` has milliseconds. Every row is valid, so both sides keep all rows.

Contenders, run alternately (order swapped every round) for --rounds rounds, wall clock:

1. ours - the mapping of the real Beeline connector's `job_postings` stream, loaded from
   `connectors/beeline/connector.yaml` (nested paths, two enum maps, a concat with a literal,
   dates with a format, integer, decimal, ISO datetime with offsets), as the sync runs it:
   `map_records` -> drop rejected rows and rows without a key -> `validate_frame` (pandera
   `canonical.schemas.Job`, lazy) -> `combine_errors` -> join `external_id` back.
2. hand-written - what a developer would write for this one connector: `pd.DataFrame(records)`
   (and again for the nested `location` dicts), then the same transformations with pandas calls
   (`map` for the enums, stripped city/region joined with ", " and nulls skipped, `to_datetime`
   with the same formats, `to_numeric` -> Int64 / float64 rounded to 2 places, ISO datetimes to
   UTC), then the same `Job.validate(frame, lazy=True)`. It has no per-row error reporting: a bad
   row makes pandera raise for the whole batch (ours turns it into a quarantined row).

Both results must be equal (`pd.testing.assert_frame_equal`, dtypes included), checked on the
first round. Wall-clock seconds decide; CPU seconds (process_time) are shown too, as the machine
may be shared. Peak memory: the rise of the process's peak RSS (VmHWM, reset before each run
through /proc/self/clear_refs, after gc and glibc malloc_trim) over the RSS before the run,
largest over the rounds.
`--profile` also runs ours once under cProfile and prints the top functions.

    .venv/bin/python benchmarks/mapping_overhead.py [--rows 1000000] [--rounds 5] [--profile]

Not part of the pytest suite.
"""

import argparse
import cProfile
import ctypes
import gc
import io
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_pipelines.canonical.schemas import Job  # noqa: E402
from integration_pipelines.connectors.registry import get_connector  # noqa: E402
from integration_pipelines.mapping import combine_errors, map_records, validate_frame  # noqa: E402
from integration_pipelines.sandbox.data import generate_requisitions  # noqa: E402

GOAL = 1.3  # ours at most 1.3x the hand-written time
MAX_ROWS = 2_000_000
STATUS = {"OPEN": "open", "ON_HOLD": "on_hold", "CLOSED": "closed", "FILLED": "filled"}
PERIOD = {"HOURLY": "hour", "DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}


# ---------------------------------------------------------------- input


def make_postings(rows: int, seed: int = 6) -> list[dict[str, Any]]:
    """`rows` Beeline job postings as the API returns them (the simulator's shape), deterministic."""
    rng = random.Random(seed)
    postings = []
    for req in generate_requisitions(f"mapping-overhead:{seed}", rows):
        i = req["index"]
        roll = req["status_roll"]
        status = "OPEN" if roll < 0.6 else "ON_HOLD" if roll < 0.75 else "CLOSED" if roll < 0.9 else "FILLED"
        updated = req["updated"].strftime("%Y-%m-%dT%H:%M:%S") + (f".{i % 1000:03d}Z" if i % 10 == 3 else "Z")
        postings.append(
            {
                "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "enterpriseJobPostingNumber": f"REQ-{104233 + i * 7:06d}",
                "enterpriseName": req["enterprise"],
                "title": req["title"],
                "status": status,
                "startDate": req["start_date"].isoformat(),
                "endDate": None if i % 50 == 7 else req["end_date"].isoformat(),
                "positions": req["positions"],
                "location": {
                    "city": req["city"],
                    "region": None if i % 20 == 5 else req["region"],
                    "country": req["country_code"],
                },
                "billRateMax": None if i % 40 == 9 else req["bill_rate_max"],
                "rateCurrency": req["currency"],
                "ratePeriod": req["rate_period"],
                "description": req["description"],
                "customFields": [
                    {"name": "Cost Center", "value": req["cost_center"]},
                    {"name": "Department", "value": req["department"]},
                    {"name": "Shift", "value": req["shift"]},
                ],
                "createdAt": req["created"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updatedAt": updated,
            }
        )
    return postings


# ---------------------------------------------------------------- contenders

MAPPING = get_connector("beeline").spec.streams["job_postings"].mapping


def ours(records: list[dict[str, Any]], phases: dict[str, float]) -> pd.DataFrame:
    """The sync's map + validate steps (sync/runner.py `write_records`, without the database)."""
    started = time.perf_counter()
    mapped = map_records(records, MAPPING)
    frame = mapped.frame
    phases["map"] = time.perf_counter() - started
    started = time.perf_counter()
    missing_key = frame["external_id"].isna()
    bad_rows = mapped.rejected_rows() | set(frame.index[missing_key])
    candidates = frame.drop(index=list(bad_rows))
    checked = validate_frame(candidates.drop(columns=["external_id"]), Job)
    errors = combine_errors(mapped.errors, checked.errors)
    valid = checked.valid.join(candidates["external_id"])
    valid["external_id"] = valid["external_id"].astype(str)
    phases["validate"] = time.perf_counter() - started
    if len(errors):
        raise AssertionError(f"ours rejected {len(errors)} rows: {errors.head().to_dict('records')}")
    return valid


def _text(values: pd.Series) -> pd.Series:
    text = values.astype("str").str.strip()
    return text.mask(text == "")


def hand_written_map(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The Beeline job_postings mapping written out by hand in pandas."""
    raw = pd.DataFrame(records)
    location = pd.DataFrame(raw["location"].tolist(), index=raw.index)
    city, region = _text(location["city"]), _text(location["region"])
    return pd.DataFrame(
        {
            "external_id": raw["uid"],
            "title": raw["title"],
            "status": raw["status"].map(STATUS),
            "client_name": raw["enterpriseName"],
            "client_reference": raw["enterpriseJobPostingNumber"],
            "description": raw["description"],
            "location": (city + ", " + region).fillna(city).fillna(region),
            "country_code": location["country"],
            "start_date": pd.to_datetime(raw["startDate"], format="%Y-%m-%d").dt.date,
            "end_date": pd.to_datetime(raw["endDate"], format="%Y-%m-%d").dt.date,
            "openings": pd.to_numeric(raw["positions"]).astype("Int64"),
            "bill_rate_max": pd.to_numeric(raw["billRateMax"]).astype("float64").round(2),
            "currency": raw["rateCurrency"],
            "rate_period": raw["ratePeriod"].map(PERIOD),
            "remote_updated_at": pd.to_datetime(raw["updatedAt"], format="ISO8601", utc=True),
        }
    )


def hand_written(records: list[dict[str, Any]], phases: dict[str, float]) -> pd.DataFrame:
    started = time.perf_counter()
    frame = hand_written_map(records)
    phases["map"] = time.perf_counter() - started
    started = time.perf_counter()
    valid = Job.validate(frame.drop(columns=["external_id"]), lazy=True).join(frame["external_id"])
    phases["validate"] = time.perf_counter() - started
    return valid


CONTENDERS: dict[str, Callable[[list[dict[str, Any]], dict[str, float]], pd.DataFrame]] = {
    "ours (map_records + validate_frame)": ours,
    "hand-written pandas + Job.validate": hand_written,
}


# ---------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so the next run's peak RSS rise is its own."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


Run = tuple[pd.DataFrame, float, dict[str, float], int]  # result, wall s, phases, peak KiB


def run_once(fn: Callable, records: list[dict[str, Any]]) -> Run:
    """Run one contender: (result, seconds, phases, peak RSS rise in KiB or -1 if unknown)."""
    gc.collect()
    _release_freed_memory()
    can_reset = _reset_peak()
    rss_before = _status_kib("VmRSS")
    phases: dict[str, float] = {}
    started, cpu = time.perf_counter(), time.process_time()
    result = fn(records, phases)
    seconds = time.perf_counter() - started
    phases["cpu"] = time.process_time() - cpu
    peak = _status_kib("VmHWM") - rss_before if can_reset else -1
    return result, seconds, phases, peak


def profile_ours(records: list[dict[str, Any]], top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    ours(records, {})
    prof.disable()
    text = ""
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(order).print_stats(top)
        text += f"\n--- by {order} ---\n" + out.getvalue().split("\n\n", 1)[-1]
    return text.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--profile", action="store_true", help="also profile one run of ours (cProfile)")
    p.add_argument("--top", type=int, default=25, help="functions shown per profile order")
    args = p.parse_args()
    if not 0 < args.rows <= MAX_ROWS:
        p.error(f"--rows must be between 1 and {MAX_ROWS}")

    import pandera

    sys.stdout.reconfigure(line_buffering=True)
    print(
        f"python {sys.version.split()[0]}, pandas {pd.__version__}, pandera {pandera.__version__}, "
        f"string storage {pd.Series(['x']).dtype.storage!r}, nproc {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f}",
    )
    started = time.perf_counter()
    records = make_postings(args.rows, args.seed)
    print(f"built {len(records):,} Beeline job postings in {time.perf_counter() - started:.1f} s")

    for fn in CONTENDERS.values():  # warm-up: imports, schema compilation, regex caches
        fn(records[:1000], {})

    names = list(CONTENDERS)
    times: dict[str, list[float]] = {k: [] for k in names}
    phases: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    peaks: dict[str, list[int]] = {k: [] for k in names}
    for r in range(1, args.rounds + 1):
        order = names if r % 2 else names[::-1]
        results = {}
        for name in order:
            result, seconds, split, peak = run_once(CONTENDERS[name], records)
            times[name].append(seconds)
            phases[name].append(split)
            peaks[name].append(peak)
            if r == 1:
                results[name] = result
            del result
            shown = "  ".join(f"{k} {v:.2f} s" for k, v in split.items() if k != "cpu")
            print(f"round {r}  {name:38s} {seconds:7.2f} s  ({shown})  peak +{peak / 1024:,.0f} MiB")
        if r == 1:
            mine, theirs = (results[k] for k in names)
            assert len(mine) == args.rows, f"ours kept {len(mine)} of {args.rows} rows"
            pd.testing.assert_frame_equal(mine, theirs)
            print(f"results equal: {len(mine):,} rows x {mine.shape[1]} columns (assert_frame_equal)")
            del results, mine, theirs

    med = {k: statistics.median(v) for k, v in times.items()}
    cpu: dict[str, float] = {}
    print()
    load = os.getloadavg()[0]
    print(f"rows={args.rows:,} rounds={args.rounds} (median of rounds; load average now {load:.2f})")
    head = f"{'seconds':>8s} {'rows/s':>11s} {'map s':>7s} {'valid. s':>8s} {'CPU s':>7s} {'peak MiB':>9s}"
    print(f"{'contender':38s} {head}  all rounds (s)")
    for k in names:
        map_s = statistics.median(s["map"] for s in phases[k])
        val_s = statistics.median(s["validate"] for s in phases[k])
        cpu[k] = statistics.median(s["cpu"] for s in phases[k])
        runs = ", ".join(f"{s:.2f}" for s in times[k])
        print(
            f"{k:38s} {med[k]:8.2f} {args.rows / med[k]:11,.0f} {map_s:7.2f} {val_s:8.2f} {cpu[k]:7.2f} "
            f"{max(peaks[k]) / 1024:9,.0f}  {runs}"
        )
    ratio = med[names[0]] / med[names[1]]
    verdict = "met" if ratio <= GOAL else "not met"
    print(f"\nratio ours / hand-written: {ratio:.2f}x  (goal <= {GOAL}x: {verdict})")
    cpu_ratio = cpu[names[0]] / cpu[names[1]]
    print(f"ratio of CPU seconds (process_time, less sensitive to a busy machine): {cpu_ratio:.2f}x")
    if args.profile:
        print(f"\ncProfile of one run of ours ({args.rows:,} rows):")
        print(profile_ours(records, args.top))


if __name__ == "__main__":
    main()
