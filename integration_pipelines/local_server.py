"""An ASGI app served by uvicorn in a background thread: simulators, the demo's receiver, tests."""

import socket
import threading
import time
from typing import Any

import uvicorn


class LocalServer:
    """Serves `app` on `host:port` (0 = a free port) until `stop()`; restartable on the same port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "server"):
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot bind the {self.name} to {self.host}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        return sock

    def start(self, timeout: float = 15) -> "LocalServer":
        if self.running:
            return self
        sock = self._bind()
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                sock.close()
                raise RuntimeError(f"the {self.name} failed to start (see the log above)")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"the {self.name} did not start within {timeout:.0f} s")
            time.sleep(0.01)
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
