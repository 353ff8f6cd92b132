"""A run's log, read through any node of a cluster.

A run's log lives in the state dir of the node that executed it (in a cluster, the
leader of the moment). A node asked for the log of a run it did not execute, whose
folder it lacks, forwards the request to the URL that node advertises (``serve
--advertise``, on its node record), with the caller's own credentials (its
``Authorization`` header or session cookie: every node checks the same token) and a
mark that keeps a forwarded request from being forwarded again. No secret of the
cluster's own is involved. The answer is the other node's, bytes and offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from jobdeck.store import Store
from jobdeck.store.records import Run
from jobdeck.workflow.placement import LEADER

FORWARDED = "X-Jobdeck-Forwarded"
CREDENTIALS = ("authorization", "cookie", "x-jobdeck-user")
TIMEOUT = 10.0


@dataclass(frozen=True)
class Elsewhere:
    """Where a run's log is: the node that executed it, and the URL it advertises."""

    node: str
    url: str | None


def elsewhere(store: Store, run: Run, me: str, have_it: bool) -> Elsewhere | None:
    """The node that holds ``run``'s log when it is not this one (``me``) and this one
    has no folder for it (``have_it``); None when the log is read here."""
    if have_it or run.host in (None, me, LEADER):
        return None
    node = store.nodes.node(run.host)
    return Elsewhere(run.host, node.url if node is not None else None)


def forwarded(headers: Mapping[str, str]) -> bool:
    return FORWARDED.lower() in {key.lower() for key in headers}


async def fetch(
    where: Elsewhere, path: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> httpx.Response:
    """GET ``path`` on the node ``where`` with the caller's credentials; raises
    :class:`httpx.HTTPError` when it does not answer."""
    assert where.url is not None
    sent = {k: v for k, v in headers.items() if k.lower() in CREDENTIALS}
    sent[FORWARDED] = "1"
    async with httpx.AsyncClient(base_url=where.url, timeout=TIMEOUT) as client:
        return await client.get(path, params=dict(params), headers=sent)
