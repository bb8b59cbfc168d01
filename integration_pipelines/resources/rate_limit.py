"""Client-side request budget for one connection, and parsing of the partner's "wait" headers."""

import datetime
import email.utils
import threading
import time
from collections.abc import Callable

from integration_pipelines.connectors.spec import RateLimit

PER_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}

# a reset header above this is a unix timestamp, not a number of seconds
_EPOCH_THRESHOLD = 1_000_000_000


class RateLimiter:
    """Token bucket: at most `requests` per `per`, shared by every thread calling one connection.

    Calls are spaced evenly (`burst` requests may go back to back, default 1), which keeps a
    connection inside both fixed-window and sliding-window partner limits. `pause_until`
    stops every caller until a moment the partner named (a 429's Retry-After). `clock` and
    `sleep` are injectable; the limiter never goes back in time even if a fake `sleep` does
    not advance the clock, so tests cannot spin.
    """

    def __init__(
        self,
        requests: int,
        per: str | float = "second",
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests <= 0:
            raise ValueError("requests must be positive")
        if burst <= 0:
            raise ValueError("burst must be positive")
        seconds = PER_SECONDS[per] if isinstance(per, str) else float(per)
        if seconds <= 0:
            raise ValueError("per must be positive")
        self.rate = requests / seconds  # tokens per second
        self.capacity = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._last = clock()
        self._paused_until = float("-inf")

    @classmethod
    def from_spec(
        cls,
        spec: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> "RateLimiter":
        """A limiter for a connector's `rate_limit` block."""
        return cls(spec.requests, spec.per, burst=spec.burst, clock=clock, sleep=sleep)

    def now(self) -> float:
        """The limiter's clock (use it to compute `pause_until` moments)."""
        return self._clock()

    @property
    def paused_until(self) -> float | None:
        """When a partner-requested pause ends, in the limiter's clock, or None."""
        with self._lock:
            return None if self._paused_until == float("-inf") else self._paused_until

    def pause_until(self, ts: float) -> None:
        """Hold every caller until `ts` (limiter clock). A pause is only ever extended."""
        with self._lock:
            self._paused_until = max(self._paused_until, ts)

    def pause_for(self, seconds: float) -> None:
        """Hold every caller for `seconds` from now."""
        self.pause_until(self._clock() + max(0.0, seconds))

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._last = now

    def acquire(self) -> float:
        """Take one request from the budget, sleeping as needed; returns the seconds waited."""
        waited = 0.0
        floor = float("-inf")  # after sleeping `w` we know at least `w` has passed
        while True:
            with self._lock:
                now = max(self._clock(), floor, self._last)
                self._refill(now)
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                else:
                    wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait
            floor = now + wait


def parse_wait_header(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After style header: a number of seconds or an HTTP date.

    A number above 10^9 is taken as a unix timestamp (some partners send the reset moment
    rather than the delay). Returns None when the value cannot be read; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    wall = time.time() if now is None else now
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        if moment.tzinfo is None:  # "-0000" dates: RFC 9110 says GMT
            moment = moment.replace(tzinfo=datetime.UTC)
        return max(0.0, moment.timestamp() - wall)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    if seconds > _EPOCH_THRESHOLD:
        seconds -= wall
    return max(0.0, seconds)


__all__ = ["PER_SECONDS", "RateLimiter", "parse_wait_header"]
