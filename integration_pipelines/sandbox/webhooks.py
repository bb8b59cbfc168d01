"""Outgoing webhooks of the partner simulators: a FIFO queue and one sender thread each.

A simulator that pushes events (Beeline, SAP Fieldglass) owns one ``WebhookSender``. Data
changes on the partner's side queue events; the sender thread POSTs them one at a time, in
the order they were queued, to the tenant's subscriber URL:

* up to ``tries`` attempts (default 5) per event; a connection error, a timeout or a non-2xx
  answer is retried after ``backoff`` seconds, doubling each time (0.2, 0.4, 0.8, 1.6 s);
* after the last failed attempt the event is given up (``stats.webhooks_failed``) and the
  next one is sent; every attempt is recorded in ``stats.webhook_deliveries`` as
  ``(event_id, status_code)`` or ``(event_id, "<error class>: <message>")``;
* the subscriber URL is looked up when an event is sent, so re-subscribing redirects pending
  events; an event whose tenant has no subscriber any more is dropped (recorded as
  ``(event_id, "no subscriber")``, counted neither sent nor failed);
* ``stop()`` ends the thread cleanly and keeps every pending event (an interrupted event
  stays first in line and is tried afresh after ``start()``): a stopped partner does not
  lose its notifications, it sends them when it comes back;
* ``shuffle_next(n)`` makes the next ``n`` events go out in reverse order (receivers must
  cope with events out of order). The sender holds back until ``n`` events are queued, for
  at most ``SHUFFLE_HOLD_SECONDS``, then reverses what it has.

The partner-specific part (body format, signature, headers) is the ``prepare`` callable the
simulator hands in: it turns a queued event into ``(url, body, headers)`` at send time, so a
timestamped signature is always fresh.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

logger = logging.getLogger(__name__)

SHUFFLE_HOLD_SECONDS = 2.0


@dataclass
class QueuedEvent:
    """One event waiting for delivery to its tenant's subscriber."""

    tenant: str
    event_id: str
    event: dict[str, Any]


@dataclass
class PreparedDelivery:
    """What to POST for one event."""

    url: str
    body: bytes
    headers: dict[str, str]


class DeliveryStats(Protocol):
    def record_webhook_attempt(self, event_id: str, outcome: int | str) -> None: ...

    def record_webhook_result(self, delivered: bool) -> None: ...


class WebhookSender:
    """FIFO queue of events plus the background thread that delivers them (see module doc)."""

    def __init__(
        self,
        name: str,
        prepare: Callable[[QueuedEvent], PreparedDelivery | None],
        stats: DeliveryStats,
        *,
        tries: int = 5,
        backoff: float = 0.2,
        timeout: float = 5.0,
    ) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        self.name = name
        self.tries = tries
        self.backoff = backoff
        self.timeout = timeout
        self._prepare = prepare
        self._stats = stats
        self._cond = threading.Condition()
        self._queue: deque[QueuedEvent] = deque()
        self._in_flight = False
        self._shuffle = 0
        self._shuffle_deadline = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the sender thread (no-op when it runs already)."""
        with self._cond:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name=f"sandbox-{self.name}-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the sender thread; pending events stay queued for the next ``start()``."""
        with self._cond:
            thread = self._thread
            self._stop.set()
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            if self._thread is thread:
                self._thread = None

    def enqueue(self, events: list[QueuedEvent]) -> None:
        with self._cond:
            self._queue.extend(events)
            self._cond.notify_all()

    def shuffle_next(self, n: int) -> None:
        """Send the next ``n`` events in reverse order (see the module docstring)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"shuffle_next needs a non-negative integer, got {n!r}")
        with self._cond:
            self._shuffle = n
            self._shuffle_deadline = time.monotonic() + SHUFFLE_HOLD_SECONDS
            self._cond.notify_all()

    def pending(self) -> int:
        """Events not delivered (or given up) yet, the one being sent included."""
        with self._cond:
            return len(self._queue)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered or given up (True) or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # ------------------------------------------------------------------ the thread

    def _next(self, stop: threading.Event) -> QueuedEvent | None:
        """Block until an event is due (or ``stop``); apply an armed shuffle first."""
        with self._cond:
            while True:
                if stop.is_set():
                    return None
                if not self._queue:
                    self._cond.wait(0.5)
                    continue
                if self._shuffle > 1:
                    remaining = self._shuffle_deadline - time.monotonic()
                    if len(self._queue) < self._shuffle and remaining > 0:
                        self._cond.wait(remaining)
                        continue
                    k = min(self._shuffle, len(self._queue))
                    head = [self._queue.popleft() for _ in range(k)]
                    self._queue.extendleft(head)  # extendleft reverses: head[-1] is now first
                self._shuffle = 0
                self._in_flight = True
                return self._queue[0]

    def _run(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while True:
                item = self._next(stop)
                if item is None:
                    return
                finished = False
                try:
                    finished = self._deliver(client, item, stop)
                except Exception:  # never let one bad event kill the sender
                    logger.exception("%s webhooks: cannot deliver event %s", self.name, item.event_id)
                    self._stats.record_webhook_attempt(item.event_id, "sandbox error")
                    self._stats.record_webhook_result(False)
                    finished = True
                with self._cond:
                    self._in_flight = False
                    if finished and self._queue and self._queue[0] is item:
                        self._queue.popleft()
                    self._cond.notify_all()

    def _deliver(self, client: httpx.Client, item: QueuedEvent, stop: threading.Event) -> bool:
        """Try to deliver ``item``; True when it is done with (delivered, given up or dropped),
        False when ``stop`` interrupted it (it stays queued)."""
        delay = self.backoff
        for attempt in range(1, self.tries + 1):
            prepared = self._prepare(item)
            if prepared is None:
                self._stats.record_webhook_attempt(item.event_id, "no subscriber")
                return True
            outcome: int | str
            try:
                response = client.post(prepared.url, content=prepared.body, headers=prepared.headers)
                outcome = response.status_code
            except httpx.HTTPError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            self._stats.record_webhook_attempt(item.event_id, outcome)
            if isinstance(outcome, int) and 200 <= outcome < 300:
                self._stats.record_webhook_result(True)
                return True
            if attempt == self.tries:
                break
            if stop.wait(delay):
                return False
            delay *= 2
        logger.warning(
            "%s webhooks: gave up on event %s after %d tries", self.name, item.event_id, self.tries
        )
        self._stats.record_webhook_result(False)
        return True
