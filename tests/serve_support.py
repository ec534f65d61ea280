"""Helpers for tests that run a real ``cclens serve``: free ports, an in-thread uvicorn, a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx2 as httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``pred`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_exc!r})")


class ThreadServer:
    """A real uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app: Any):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        wait_until(lambda: httpx.get(self.url + "/healthz", timeout=2).status_code == 200, what="server up")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(60)


class ServeProcess:
    """``cclens serve`` as a subprocess on free ports; ``stop()`` is graceful, ``kill()`` is kill -9."""

    def __init__(self, db: Path, *extra: str, env: dict[str, str] | None = None, grpc: bool = True):
        self.db = db
        self.port = free_port()
        self.grpc_port = free_port() if grpc else 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "cclens.cli", "--db", str(db), "serve", "--port", str(self.port),
                     "--grpc-port", str(self.grpc_port), *extra]
        self.env = {**os.environ, **(env or {})}
        self.log_path = db.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ServeProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200

        wait_until(up, timeout=timeout, what=f"cclens serve on {self.url}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            self.stop()
