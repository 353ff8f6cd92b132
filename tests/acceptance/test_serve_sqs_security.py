"""`jobdeck serve` and its SQS endpoint's bind: explicit (--sqs-host), refused beyond
loopback without a secret for the workers, TLS 1.2+ with --tls-cert/--tls-key, SigV4
signatures verified, and the real address in the log."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from jobdeck.queues.sigv4 import SECRET_ENV
from tests.acceptance.server import free_port, wait_for
from tests.integration.test_api_auth import blocking_handshake, self_signed, tls11_client

CATALOG = "version: 1\nproject: sqstls\nqueues:\n  feed-index: {}\n"


def environment(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBDECK_")}
    return {**env, "JOBDECK_STATE_DIR": str(workdir / ".jobdeck"), **extra}


def test_serving_sqs_beyond_loopback_needs_the_workers_secret(tmp_path: Path) -> None:
    (tmp_path / "jobdeck.yaml").write_text(CATALOG)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "jobdeck", "serve", "--port", str(free_port())),
            *("--sqs-port", str(free_port()), "--sqs-host", "0.0.0.0"),
        ],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "refusing to serve the SQS endpoint on 0.0.0.0" in done.stderr
    assert SECRET_ENV in done.stderr


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    (tmp_path / "jobdeck.yaml").write_text(CATALOG)
    cert, key = self_signed(tmp_path)
    port, sqs_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "jobdeck", "serve", "--apply", "--isolation", "rlimit"),
                *("--port", str(port), "--sqs-port", str(sqs_port), "--sqs-host", "127.0.0.1"),
                *("--sqs-verify", "--tls-cert", str(cert), "--tls-key", str(key)),
            ],
            cwd=tmp_path,
            env=environment(tmp_path, **{SECRET_ENV: "workers-secret"}),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening() -> bool:
            assert process.poll() is None, log.read_text()
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", sqs_port)) == 0

        wait_for(listening, timeout=60, what="the SQS endpoint")
        yield sqs_port, cert, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_the_endpoint_speaks_tls_and_verifies_signatures(
    tls_server: tuple[int, Path, Path],
) -> None:
    sqs_port, cert, log = tls_server

    sqs = boto3.client(
        "sqs",
        endpoint_url=f"https://127.0.0.1:{sqs_port}",
        region_name="us-east-1",
        aws_access_key_id="jobdeck",
        aws_secret_access_key="workers-secret",
        verify=str(cert),
        config=Config(retries={"max_attempts": 1}),
    )
    url = sqs.get_queue_url(QueueName="feed-index")["QueueUrl"]
    assert url.startswith(f"https://127.0.0.1:{sqs_port}/")
    sqs.send_message(QueueUrl=url, MessageBody="over TLS")
    wrong = boto3.client(
        "sqs",
        endpoint_url=f"https://127.0.0.1:{sqs_port}",
        region_name="us-east-1",
        aws_access_key_id="jobdeck",
        aws_secret_access_key="jobdeck-local",
        verify=str(cert),
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as raised:
        wrong.list_queues()
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ssl.SSLError):
        blocking_handshake(sqs_port, tls11_client(cert))
    assert f"SQS-compatible endpoint on https://127.0.0.1:{sqs_port}" in log.read_text()
    assert "SigV4 signatures verified" in log.read_text()
