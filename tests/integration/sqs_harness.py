"""A real SQS-compatible endpoint in a child process, and boto3 clients for it."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SERVER_SCRIPT = Path(__file__).with_name("sqs_server.py")
REGION = "us-east-1"
START_DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SqsServer:
    """``python sqs_server.py --store URL --port N``, started, killed and restarted."""

    def __init__(
        self, store_url: str, *, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.store_url = store_url
        self.args = args
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        process = subprocess.Popen(
            [
                sys.executable,
                str(SERVER_SCRIPT),
                "--store",
                self.store_url,
                "--port",
                str(self.port),
                *self.args,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.process = process
        assert process.stdout is not None
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                line = process.stdout.readline()
                if line.strip() == "ready":
                    return
                if line == "":
                    break
            if process.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"the SQS endpoint did not start (exit {process.returncode})")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, nothing."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        assert self.process is not None
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def client(self, **config: Any) -> SQSClient:
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="jobdeck",
            aws_secret_access_key="jobdeck-local",
            config=Config(retries={"max_attempts": 1}, **config),
        )


def unique(stem: str = "q") -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return str(error.get("Code")), str(error.get("QueryErrorCode", ""))


def receive_all(sqs: SQSClient, url: str, **options: Any) -> list[Any]:
    options.setdefault("MaxNumberOfMessages", 10)
    answer = sqs.receive_message(QueueUrl=url, **options)
    return list(answer.get("Messages", []))
