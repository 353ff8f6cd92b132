"""Alembic migrations of the store; run by :func:`jobdeck.store.migrate.upgrade`."""
