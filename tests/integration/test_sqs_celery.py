"""A Celery worker on kombu's SQS transport, unchanged, against the endpoint: 100 tasks
through a standard queue and 100 through a FIFO queue, each run exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from tests.integration.sqs_harness import SqsServer, unique

pytest.importorskip("celery", reason="celery[sqs] (in the dev extra) is missing")
pytest.importorskip("pycurl", reason="pycurl (kombu's SQS transport needs it) is missing")

TASKS = 100
DEADLINE_S = 90.0

APP = """
import os
from celery import Celery

app = Celery("jobdeck_celery_test", broker=os.environ["BROKER"])
app.conf.broker_transport_options = {
    "region": "us-east-1",
    "is_secure": False,
    "polling_interval": 0.2,
    "wait_time_seconds": 1,
}
app.conf.task_default_queue = os.environ["QUEUE"]
app.conf.worker_hijack_root_logger = False


@app.task
def record(n):
    with open(os.environ["OUT"], "a") as out:
        out.write(f"{n}\\n")
"""


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_celery_worker_runs_every_task_once(
    sqs_server: SqsServer, tmp_path: Path, fifo: bool
) -> None:
    (tmp_path / "celery_app.py").write_text(APP)
    out = tmp_path / "done.txt"
    queue = unique("celery") + (".fifo" if fifo else "")
    env = {
        **os.environ,
        "BROKER": f"sqs://jobdeck:jobdeck-local@127.0.0.1:{sqs_server.port}",
        "QUEUE": queue,
        "OUT": str(out),
        "PYTHONPATH": str(tmp_path),
        "C_FORCE_ROOT": "1",
    }
    with (tmp_path / "worker.log").open("w") as worker_log:
        lines = _run(tmp_path, env, queue, out, worker_log)
    log = (tmp_path / "worker.log").read_text()
    assert sorted(int(n) for n in lines) == list(range(TASKS)), log[-3000:]
    if fifo:
        assert [int(n) for n in lines] == list(range(TASKS))  # one group: in order


def _run(tmp_path: Path, env: dict[str, str], queue: str, out: Path, log: IO[str]) -> list[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "-Q", queue],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"from celery_app import record\nfor i in range({TASKS}): record.delay(i)",
            ],
            cwd=tmp_path,
            env=env,
            check=True,
            timeout=120,
        )
        deadline = time.monotonic() + DEADLINE_S
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = out.read_text().split() if out.exists() else []
            if len(lines) >= TASKS or worker.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return lines
