"""Run the partner simulators as real HTTP servers (one uvicorn per partner, in threads).

``Sandbox`` is what tests and the CLI use::

    with Sandbox() as sandbox:
        creds = sandbox.simulators["beeline"].add_tenant("acme")
        base = sandbox.base_url("beeline")   # http://127.0.0.1:<port>/api/gwg/supplier

``stop_partner`` / ``start_partner`` give real downtime (connection refused) and bring the
partner back on the same port with its data intact. A stopped partner's webhook sender stops
too; events queued meanwhile (and any not yet delivered) go out once it is started again.
"""

import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any, TextIO

from integration_pipelines.local_server import LocalServer
from integration_pipelines.sandbox.beeline import BeelineSimulator
from integration_pipelines.sandbox.daxtra import DaxtraSimulator
from integration_pipelines.sandbox.sap_fieldglass import SapFieldglassSimulator
from integration_pipelines.sandbox.simulator import Simulator
from integration_pipelines.sandbox.textkernel import TextkernelSimulator

#: Partner names in a fixed order (``port_base`` + index gives each partner's port).
PARTNERS: tuple[str, ...] = ("textkernel", "daxtra", "beeline", "sap_fieldglass")

SIMULATOR_CLASSES: dict[str, type[Simulator]] = {
    "textkernel": TextkernelSimulator,
    "daxtra": DaxtraSimulator,
    "beeline": BeelineSimulator,
    "sap_fieldglass": SapFieldglassSimulator,
}

DEFAULT_TENANTS: tuple[str, ...] = ("acme", "globex")


class Sandbox:
    """Local simulators of real partner APIs, each served on its own port.

    ``partners``: names from ``PARTNERS`` (``None`` = all four). ``port_base``: fixed ports
    ``port_base + PARTNERS.index(name)`` instead of free ones. ``options``: constructor
    arguments per partner, e.g. ``{"beeline": {"rate_limit_per_minute": 10_000}}``.
    """

    def __init__(
        self,
        partners: list[str] | None = None,
        host: str = "127.0.0.1",
        port_base: int | None = None,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        names = list(PARTNERS) if partners is None else list(partners)
        unknown = [n for n in names if n not in SIMULATOR_CLASSES]
        if unknown:
            raise ValueError(f"unknown partner(s) {unknown}; choose from {', '.join(PARTNERS)}")
        options = options or {}
        stray = [n for n in options if n not in names]
        if stray:
            raise ValueError(f"options given for partner(s) not in this sandbox: {stray}")
        self.host = host
        self.simulators: dict[str, Simulator] = {n: SIMULATOR_CLASSES[n](**options.get(n, {})) for n in names}
        self.ports: dict[str, int] = {}
        if port_base is not None:
            self.ports = {n: port_base + PARTNERS.index(n) for n in names}
        self._running: dict[str, LocalServer] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Sandbox":
        """Start every simulator (each on its own port, in a background thread)."""
        try:
            for name in self.simulators:
                self.start_partner(name)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every running simulator (and every webhook sender)."""
        for name in list(self._running):
            self.stop_partner(name)
        for simulator in self.simulators.values():
            simulator.stop_webhooks()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _simulator(self, name: str) -> Simulator:
        try:
            return self.simulators[name]
        except KeyError:
            raise KeyError(
                f"partner {name!r} is not in this sandbox ({', '.join(self.simulators)})"
            ) from None

    def start_partner(self, name: str) -> None:
        """Start one simulator (again), on the same port it had before if it ran already."""
        simulator = self._simulator(name)
        with self._lock:
            if name in self._running:
                return
            server = LocalServer(simulator.app, self.host, self.ports.get(name, 0), name=f"{name} simulator")
            self._running[name] = server.start()
            self.ports[name] = server.port
        simulator.start_webhooks()

    def stop_partner(self, name: str) -> None:
        """Take one simulator down (connections are refused until ``start_partner``); its
        webhook sender stops and keeps the pending events."""
        simulator = self._simulator(name)
        with self._lock:
            running = self._running.pop(name, None)
        if running is None:
            return
        simulator.stop_webhooks()
        running.stop()

    def is_running(self, name: str) -> bool:
        return name in self._running

    # ------------------------------------------------------------------ addresses and tenants

    def _public_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def base_url(self, name: str) -> str:
        """Base URL a connector uses for ``name`` (e.g. ``http://127.0.0.1:8123/tx/v10``)."""
        simulator = self._simulator(name)
        if name not in self.ports:
            raise RuntimeError(f"the {name} simulator has no port yet: call start() first")
        return f"http://{self._public_host()}:{self.ports[name]}{simulator.base_path}"

    def admin_url(self, name: str) -> str:
        """Root of the simulator's admin endpoints (``.../_sandbox``)."""
        self._simulator(name)
        return f"http://{self._public_host()}:{self.ports[name]}/_sandbox"

    def add_tenant(self, tenant: str, records: int | None = None) -> dict[str, dict[str, str]]:
        """Add ``tenant`` to every simulator; returns ``{partner: credentials}``."""
        return {name: sim.add_tenant(tenant, records) for name, sim in self.simulators.items()}

    def describe(self) -> str:
        """Human-readable summary: base URLs, admin URLs and every tenant's credentials."""
        lines = []
        for name, sim in self.simulators.items():
            lines.append(f"{name:<15} {self.base_url(name)}")
            lines.append(f"{'':<15} admin: {self.admin_url(name)}/stats")
            for tenant, state in sorted(sim.tenants.items()):
                creds = "  ".join(f"{k}={v}" for k, v in state.credentials.items())
                lines.append(f"{'':<15} {tenant}: {creds}")
        return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_forever(
    port_base: int | None = None,
    *,
    host: str = "127.0.0.1",
    tenants: tuple[str, ...] | list[str] = DEFAULT_TENANTS,
    out: TextIO | None = None,
) -> None:
    """Start all simulators, seed ``tenants`` (acme, globex), print URLs and credentials,
    and block until Ctrl-C (or SIGTERM). Fixed ports ``port_base`` .. ``port_base + 3`` when
    given, free ports otherwise."""
    out = out or sys.stdout
    sandbox = Sandbox(host=host, port_base=port_base).start()
    try:
        for tenant in tenants:
            sandbox.add_tenant(tenant)
        print("Partner sandbox running. Press Ctrl-C to stop.\n", file=out)
        print(sandbox.describe(), file=out, flush=True)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_interrupt)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopping the partner sandbox...", file=out, flush=True)
    finally:
        sandbox.stop()
