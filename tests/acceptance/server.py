"""A real `jobdeck serve` in a child process, for the tests that restart or kill it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


class Server:
    def __init__(
        self,
        workdir: Path,
        *,
        state_dir: Path | None = None,
        store_url: str | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        sqs: bool = False,
    ) -> None:
        self.workdir = workdir
        self.state_dir = state_dir or workdir / ".jobdeck"
        self.store_url = store_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sqs_port = free_port() if sqs else 0
        self.sqs_url = f"http://127.0.0.1:{self.sqs_port}"
        self.env = env or {}
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"server-{self.port}.log"

    def environment(self) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
        environment.update(
            {
                "JOBDECK_USER": "alice",
                "JOBDECK_STATE_DIR": str(self.state_dir),
                "JOBDECK_URL": self.url,
                **({"JOBDECK_STORE": self.store_url} if self.store_url else {}),
                **self.env,
            }
        )
        return environment

    def start(self) -> Server:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jobdeck",
                    "serve",
                    "--port",
                    str(self.port),
                    "--sqs-port",
                    str(self.sqs_port),
                    *self.args,
                ],
                cwd=self.workdir,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, timeout=60, what=f"{self.url}/healthz ({self.output()})")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited: {self.output()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, timeout=10)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
