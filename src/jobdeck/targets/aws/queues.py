"""SQS queues of the catalog, each with its dead-letter queue and redrive policy."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jobdeck.catalog.model import Queue

# A dead letter is kept as long as SQS allows, to leave time for a redrive.
DLQ_RETENTION_DAYS = 14


def queue_name(name: str, fifo: bool) -> str:
    """The catalog's name, as on the local SQS endpoint (SPEC section 1), so that code
    that finds a queue by name (GetQueueUrl) runs unchanged; names are per account and
    region, so two projects there must not declare the same queue."""
    return f"{name}{'.fifo' if fifo else ''}"


class Queues(Construct):
    def __init__(self, scope: Construct, construct_id: str, queues: dict[str, Queue]) -> None:
        super().__init__(scope, construct_id)
        self.by_name: dict[str, sqs.Queue] = {}
        self.dead_letters: dict[str, sqs.Queue] = {}
        for name, spec in queues.items():
            dead_letter: sqs.DeadLetterQueue | None = None
            if spec.max_receive_count is not None:
                dlq = sqs.Queue(
                    self,
                    f"{name}-dlq",
                    queue_name=queue_name(f"{name}-dlq", spec.fifo),
                    fifo=spec.fifo or None,
                    retention_period=Duration.days(DLQ_RETENTION_DAYS),
                    removal_policy=RemovalPolicy.RETAIN,
                    enforce_ssl=True,
                )
                self.dead_letters[name] = dlq
                dead_letter = sqs.DeadLetterQueue(
                    max_receive_count=spec.max_receive_count, queue=dlq
                )
            self.by_name[name] = sqs.Queue(
                self,
                name,
                queue_name=queue_name(name, spec.fifo),
                fifo=spec.fifo or None,
                content_based_deduplication=spec.content_based_deduplication or None,
                visibility_timeout=Duration.seconds(int(spec.visibility_timeout.total_seconds())),
                retention_period=Duration.seconds(int(spec.retention.total_seconds())),
                delivery_delay=Duration.seconds(int(spec.delay.total_seconds())),
                dead_letter_queue=dead_letter,
                removal_policy=RemovalPolicy.RETAIN,
                enforce_ssl=True,  # a policy denies aws:SecureTransport = false
            )

    def grant_use(self, role: iam.IGrantable) -> None:
        """Every process of the project may use every queue of its catalog, as with the
        local endpoint: a worker may feed another queue, a schedule may produce."""
        for queue in self.by_name.values():
            queue.grant_send_messages(role)
            queue.grant_consume_messages(role)  # with GetQueueUrl and GetQueueAttributes
