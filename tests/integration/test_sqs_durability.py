"""A message acknowledged by SendMessage survives ``kill -9`` of the endpoint."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.integration.sqs_harness import SqsServer


def test_acknowledged_messages_survive_kill_9(sqs_store_url: str) -> None:
    server = SqsServer(sqs_store_url)
    server.start()
    try:
        sqs = server.client()
        url = sqs.create_queue(QueueName="durable")["QueueUrl"]
        acknowledged: set[str] = set()
        lock = threading.Lock()

        def send(worker: int) -> None:
            client = server.client()
            for batch in range(10):
                entries: Any = [
                    {"Id": str(i), "MessageBody": f"w{worker}-b{batch}-m{i}"} for i in range(10)
                ]
                answer = client.send_message_batch(QueueUrl=url, Entries=entries)
                assert not answer.get("Failed")
                with lock:
                    acknowledged.update(e["MessageBody"] for e in entries)
            single = client.send_message(QueueUrl=url, MessageBody=f"w{worker}-single")
            assert single["MessageId"]
            with lock:
                acknowledged.add(f"w{worker}-single")

        senders = [threading.Thread(target=send, args=(w,)) for w in range(4)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=120)
        # Half of them received (in flight) when the server dies: they must come back too.
        in_flight = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)
        assert len(in_flight.get("Messages", [])) == 10
        server.kill()

        server.start()
        sqs = server.client()
        received: set[str] = set()
        while True:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=3)
            messages = answer.get("Messages", [])
            if not messages:
                break
            received.update(m["Body"] for m in messages)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        assert len(acknowledged) == 404
        assert received == acknowledged
    finally:
        server.kill()


def test_sigterm_answers_waiting_long_polls_and_stops_promptly(sqs_store_url: str) -> None:
    server = SqsServer(sqs_store_url)
    server.start()
    try:
        client = server.client(read_timeout=60)
        url = client.create_queue(QueueName="stopping")["QueueUrl"]
        answers: list[Any] = []
        waiter = threading.Thread(
            target=lambda: answers.append(client.receive_message(QueueUrl=url, WaitTimeSeconds=20))
        )
        waiter.start()
        time.sleep(1)  # lets the receive start waiting; correctness does not depend on it
        begun = time.monotonic()
        server.stop()
        assert time.monotonic() - begun < 10
        waiter.join(timeout=30)
        assert len(answers) == 1
        assert answers[0].get("Messages", []) == []
    finally:
        server.kill()
