import email.utils

import pytest

from integration_pipelines.connectors.spec import RateLimit
from integration_pipelines.resources.rate_limit import RateLimiter, parse_wait_header

from .fakes import FakeClock


def test_bucket_spaces_calls_evenly(clock: FakeClock) -> None:
    limiter = RateLimiter(2, "second", clock=clock, sleep=clock.sleep)
    stamps, waits = [], []
    for _ in range(4):
        waits.append(limiter.acquire())
        stamps.append(clock())
    assert waits == [0.0, 0.5, 0.5, 0.5]
    assert stamps == [1000.0, 1000.5, 1001.0, 1001.5]


def test_idle_time_refills_only_up_to_burst(clock: FakeClock) -> None:
    limiter = RateLimiter.from_spec(RateLimit(requests=60, per="minute"), clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.advance(30)  # a long pause does not allow a burst of 30
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(1.0)


def test_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(10, "second", burst=3, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.1)]


def test_pause_until_holds_every_caller(clock: FakeClock) -> None:
    limiter = RateLimiter(100, "second", clock=clock, sleep=clock.sleep)
    limiter.pause_for(5)
    limiter.pause_until(clock() + 2)  # a shorter pause does not shorten it
    assert limiter.paused_until == 1005.0
    assert limiter.acquire() == pytest.approx(5.0)
    assert clock() == pytest.approx(1005.0)


def test_fake_sleep_that_does_not_advance_the_clock_cannot_spin() -> None:
    slept: list[float] = []
    limiter = RateLimiter(1, "second", clock=lambda: 0.0, sleep=slept.append)
    for _ in range(3):
        limiter.acquire()
    assert slept == [1.0, 1.0]


def test_parse_wait_header() -> None:
    now = 1_700_000_000.0
    assert parse_wait_header("7", now=now) == 7.0
    assert parse_wait_header(" 2.5 ", now=now) == 2.5
    assert parse_wait_header(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_wait_header(str(int(now + 12)), now=now) == 12.0  # a reset moment as unix time
    assert parse_wait_header("-3", now=now) == 0.0
    assert parse_wait_header("soon", now=now) is None
    assert parse_wait_header(None) is None
