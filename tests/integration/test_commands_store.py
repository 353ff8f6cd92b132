"""Invocation keys: the store lets exactly one request with a key start a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobdeck.store import Store

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_key_is_claimed_once_and_remembers_its_run(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.keys.claim_key("slack:trigger:1", at=NOW)
        assert not tx.keys.claim_key("slack:trigger:1", at=NOW)
        run = tx.runs.create_run(
            job="say", kind="command", trigger="chatops", status="pending", created_at=NOW
        )
        tx.keys.attach_run("slack:trigger:1", run.id)
    with store.transaction() as tx:
        assert not tx.keys.claim_key("slack:trigger:1", at=NOW + timedelta(seconds=5))
        assert tx.keys.key_run("slack:trigger:1") == run.id
        assert tx.keys.key_run("never-seen") is None


def test_long_keys_are_kept_as_digests_and_old_keys_pruned(store: Store) -> None:
    long_key = "preview:" + "x" * 500
    with store.transaction() as tx:
        assert tx.keys.claim_key(long_key, at=NOW)
        assert not tx.keys.claim_key(long_key, at=NOW)
        assert tx.keys.claim_key("later", at=NOW + timedelta(hours=2))
        assert tx.keys.prune_keys(before=NOW + timedelta(hours=1)) == 1
        assert tx.keys.claim_key(long_key, at=NOW + timedelta(hours=3))
        assert not tx.keys.claim_key("later", at=NOW + timedelta(hours=3))


def test_a_released_key_may_be_claimed_again(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.keys.claim_key("slack:preview:abc", at=NOW)
        tx.keys.release_key("slack:preview:abc")
        assert tx.keys.claim_key("slack:preview:abc", at=NOW)
        assert not tx.keys.claim_key("slack:preview:abc", at=NOW)
