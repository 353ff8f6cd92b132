"""Queues declared in the catalog: their names on the wire, their settings, and the
apply step that makes the store's queues follow the applied revision.

A catalog queue ``feed-index`` is ``feed-index`` on the wire with its dead-letter queue
``feed-index-dlq``; with ``fifo: true`` they are ``feed-index.fifo`` and
``feed-index-dlq.fifo``. Queues created through the API live beside them; a queue the
catalog no longer declares is kept with its messages, as an API queue.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from jobdeck.catalog.model import Catalog, Queue
from jobdeck.queues.attributes import FIFO_SUFFIX, LOCAL_ACCOUNT_ID, LOCAL_REGION
from jobdeck.queues.sigv4 import WELL_KNOWN_SECRET, WORKER_ACCESS_KEY_ID, worker_secret
from jobdeck.store import Tx
from jobdeck.store.queue_records import QueueSettings
from jobdeck.store.records import Revision

DEAD_LETTER_SUFFIX = "-dlq"
# Dead letters are kept as long as SQS allows, so that nobody loses one unseen.
DEAD_LETTER_RETENTION_S = 1_209_600

# The credentials workers get: the endpoint accepts any SigV4 signature, so these are
# fixed, public and grant nothing anywhere else.
LOCAL_ACCESS_KEY_ID = WORKER_ACCESS_KEY_ID
LOCAL_SECRET_ACCESS_KEY = WELL_KNOWN_SECRET


def wire_name(name: str, fifo: bool) -> str:
    return name + FIFO_SUFFIX if fifo else name


def dead_letter_name(name: str, fifo: bool) -> str:
    return wire_name(name + DEAD_LETTER_SUFFIX, fifo)


def catalog_settings(spec: Queue, dead_letter: str) -> QueueSettings:
    """The settings a catalog queue gets; SQS's defaults for what the catalog lacks."""
    redrive = spec.max_receive_count is not None
    return QueueSettings(
        visibility_timeout=int(spec.visibility_timeout.total_seconds()),
        delay_seconds=int(spec.delay.total_seconds()),
        retention_seconds=int(spec.retention.total_seconds()),
        content_based_deduplication=spec.content_based_deduplication,
        dead_letter_target=dead_letter if redrive else None,
        max_receive_count=spec.max_receive_count,
    )


def desired_queues(catalog: Catalog) -> dict[str, tuple[bool, QueueSettings]]:
    """Every wire queue the catalog declares: name -> (fifo, settings)."""
    wanted: dict[str, tuple[bool, QueueSettings]] = {}
    for name, spec in catalog.queues.items():
        dead_letter = dead_letter_name(name, spec.fifo)
        wanted[dead_letter] = (
            spec.fifo,
            QueueSettings(
                retention_seconds=DEAD_LETTER_RETENTION_S,
                content_based_deduplication=spec.content_based_deduplication,
            ),
        )
        wanted[wire_name(name, spec.fifo)] = (spec.fifo, catalog_settings(spec, dead_letter))
    return wanted


def sync_catalog_queues(tx: Tx, revision: Revision) -> None:
    """The apply step (a :data:`jobdeck.control.ApplyStep`): creates the revision's
    queues, sets their settings, and releases those it no longer declares; all in the
    apply's transaction, so queues change exactly when the revision does."""
    now = int(revision.applied_at.timestamp() * 1000)
    wanted = desired_queues(Catalog.model_validate(revision.catalog))
    existing = {q.name: q for q in tx.queues.queues()}
    # Dead-letter queues first: a source's redrive policy names one.
    for name in sorted(wanted, key=lambda n: not n.removesuffix(FIFO_SUFFIX).endswith("-dlq")):
        fifo, settings = wanted[name]
        current = existing.get(name)
        if current is None:
            tx.queues.create_queue(name, fifo=fifo, settings=settings, origin="catalog", now_ms=now)
            continue
        # Attributes set through the API that the catalog has no word for stay.
        merged = replace(settings, extra=current.settings.extra)
        if current.settings != merged or current.origin != "catalog":
            tx.queues.update_queue(name, settings=merged, now_ms=now, origin="catalog")
    for name, queue in existing.items():
        if queue.origin == "catalog" and name not in wanted:
            tx.queues.set_queue_origin(name, "api")


def worker_environment(
    base_url: str, queue: str | None, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """What a worker process needs to use the endpoint with unchanged SQS code:
    the endpoint, a region, credentials it accepts (the secret is the engine's
    JOBDECK_SQS_SECRET_ACCESS_KEY where one is set), and its queue's URL."""
    env = {
        "AWS_ENDPOINT_URL_SQS": base_url.rstrip("/"),
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": worker_secret(environ),
    }
    if queue is not None:
        env["JOBDECK_QUEUE_URL"] = f"{base_url.rstrip('/')}/{LOCAL_ACCOUNT_ID}/{queue}"
    return env
