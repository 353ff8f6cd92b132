"""Invocation keys: the store lets exactly one request with a key start a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobdeck.store import Store
from jobdeck.store import invocations_sql as keys

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_key_is_claimed_once_and_remembers_its_run(store: Store) -> None:
    with store.transaction() as tx:
        assert keys.claim_key(tx, "slack:trigger:1", at=NOW)
        assert not keys.claim_key(tx, "slack:trigger:1", at=NOW)
        run = tx.create_run(
            job="say", kind="command", trigger="chatops", status="pending", created_at=NOW
        )
        keys.attach_run(tx, "slack:trigger:1", run.id)
    with store.transaction() as tx:
        assert not keys.claim_key(tx, "slack:trigger:1", at=NOW + timedelta(seconds=5))
        assert keys.key_run(tx, "slack:trigger:1") == run.id
        assert keys.key_run(tx, "never-seen") is None


def test_long_keys_are_kept_as_digests_and_old_keys_pruned(store: Store) -> None:
    long_key = "preview:" + "x" * 500
    with store.transaction() as tx:
        assert keys.claim_key(tx, long_key, at=NOW)
        assert not keys.claim_key(tx, long_key, at=NOW)
        assert keys.claim_key(tx, "later", at=NOW + timedelta(hours=2))
        assert keys.prune_keys(tx, before=NOW + timedelta(hours=1)) == 1
        assert keys.claim_key(tx, long_key, at=NOW + timedelta(hours=3))
        assert not keys.claim_key(tx, "later", at=NOW + timedelta(hours=3))


def test_a_released_key_may_be_claimed_again(store: Store) -> None:
    with store.transaction() as tx:
        assert keys.claim_key(tx, "slack:preview:abc", at=NOW)
        keys.release_key(tx, "slack:preview:abc")
        assert keys.claim_key(tx, "slack:preview:abc", at=NOW)
        assert not keys.claim_key(tx, "slack:preview:abc", at=NOW)
