"""The background batch writer keeps order, stops at the first failure and loses nothing."""

import threading
import time

import pytest

from integration_pipelines.sync.writer import BatchWriter


def test_batches_are_written_in_order_on_another_thread() -> None:
    written, threads = [], set()

    def write(batch: int) -> None:
        time.sleep(0.001 * (batch % 3))  # uneven write times must not reorder anything
        written.append(batch)
        threads.add(threading.current_thread().name)

    with BatchWriter(write) as writer:
        for batch in range(50):
            writer.submit(batch)
    assert written == list(range(50))
    assert threading.current_thread().name not in threads


def test_after_a_failed_write_later_batches_are_dropped_and_the_error_reaches_the_caller() -> None:
    written = []

    def write(batch: int) -> None:
        if batch == 3:
            raise RuntimeError("database went away")
        written.append(batch)

    with pytest.raises(RuntimeError, match="database went away"):
        with BatchWriter(write) as writer:
            for batch in range(10):
                writer.submit(batch)
                time.sleep(0.002)
    assert written == [0, 1, 2]  # nothing after the failed batch: its checkpoint never moves past it


def test_drain_waits_for_every_submitted_batch() -> None:
    written = []
    writer = BatchWriter(lambda b: (time.sleep(0.01), written.append(b)))
    writer.submit(1)
    writer.submit(2)
    writer.drain()
    assert written == [1, 2]
    writer.close()


def test_when_the_caller_fails_the_batches_it_submitted_are_still_written() -> None:
    written = []
    with pytest.raises(ValueError, match="partner page unreadable"):
        with BatchWriter(lambda b: (time.sleep(0.01), written.append(b))) as writer:
            writer.submit("a")
            writer.submit("b")
            raise ValueError("partner page unreadable")
    assert written == ["a", "b"]
