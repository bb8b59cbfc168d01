"""Writing batches on a second thread while the next batch is fetched and mapped.

A sync alternates between Python work (fetching, decoding, mapping, validating) and waiting
on the database (COPY, index inserts, commit). With `BatchWriter` the database works on
batch N while Python prepares batch N+1, so the two cores of a small machine both work.

Order and crash safety are kept: batches are written one at a time, in the order they were
submitted, each in its own transaction with its checkpoint. Once one write fails, the
batches after it are dropped, never written, so a checkpoint can never move past a batch
that was not stored; the error is raised in the caller's thread. At most one batch waits
in the queue, so memory stays bounded.
"""

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("integration_pipelines.sync")

_STOP = object()


class BatchWriter:
    """Calls `write(batch)` for each submitted batch, in order, on one background thread."""

    def __init__(self, write: Callable[[Any], None], *, name: str = "batch-writer"):
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, batch: Any) -> None:
        """Queue a batch; blocks while one is already waiting. Raises an earlier write's error."""
        self._raise_if_failed()
        self._queue.put(batch)

    def drain(self) -> None:
        """Wait until every submitted batch is written; raises a write's error."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Write what was submitted, stop the thread; raises a write's error."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise_if_failed()

    def __enter__(self) -> "BatchWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
            return
        # the caller failed: still write the batches it prepared (they are valid), then let
        # the caller's error propagate; a write error at this point is only logged
        try:
            self.close()
        except Exception as write_error:  # noqa: BLE001 - the caller's error is the one raised
            log.error("writing a batch failed after the sync had already failed: %s", write_error)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is _STOP:
                    return
                if self._error is None:  # after a failure, later batches are dropped
                    self._write(batch)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
                self._error = error
            finally:
                self._queue.task_done()
