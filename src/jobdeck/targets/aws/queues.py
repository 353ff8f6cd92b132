"""SQS queues of the catalog, each with its dead-letter queue and redrive policy."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobdeck.catalog.model import Queue

# A dead letter is kept as long as SQS allows, to leave time for a redrive.
DLQ_RETENTION_DAYS = 14


def queue_name(project: str, name: str, fifo: bool) -> str:
    return f"{project}-{name}{'.fifo' if fifo else ''}"


class Queues(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, project: str, queues: dict[str, Queue]
    ) -> None:
        super().__init__(scope, construct_id)
        self.by_name: dict[str, sqs.Queue] = {}
        for name, spec in queues.items():
            dead_letter: sqs.DeadLetterQueue | None = None
            if spec.max_receive_count is not None:
                dlq = sqs.Queue(
                    self,
                    f"{name}-dlq",
                    queue_name=queue_name(project, f"{name}-dlq", spec.fifo),
                    fifo=spec.fifo or None,
                    retention_period=Duration.days(DLQ_RETENTION_DAYS),
                    removal_policy=RemovalPolicy.RETAIN,
                )
                dead_letter = sqs.DeadLetterQueue(
                    max_receive_count=spec.max_receive_count, queue=dlq
                )
            self.by_name[name] = sqs.Queue(
                self,
                name,
                queue_name=queue_name(project, name, spec.fifo),
                fifo=spec.fifo or None,
                content_based_deduplication=spec.content_based_deduplication or None,
                visibility_timeout=Duration.seconds(int(spec.visibility_timeout.total_seconds())),
                retention_period=Duration.seconds(int(spec.retention.total_seconds())),
                delivery_delay=Duration.seconds(int(spec.delay.total_seconds())),
                dead_letter_queue=dead_letter,
                removal_policy=RemovalPolicy.RETAIN,
            )
