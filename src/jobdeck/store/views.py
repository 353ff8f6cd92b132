"""Reads outside a transaction: a view of one aggregate whose every call runs in a read
snapshot of its own, typed by the aggregate's read-only Protocol.

``store.runs.run(7)`` is ``with store.reading() as tx: return tx.runs.run(7)``. The view
is generic (no method is written twice) and only the Protocol's methods exist on it, so
neither mypy nor the running program lets anyone write through it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from jobdeck.store.ports import Tx


def read_view(
    reading: Callable[[], AbstractContextManager[Tx]], aggregate: str, reads: type
) -> Any:
    """A view of ``aggregate`` (an attribute of :class:`Tx`) offering the methods of the
    Protocol ``reads``; the caller types it (``self.runs: RunReads = read_view(...)``)."""
    return ReadView(reading, aggregate, frozenset(_methods(reads)))


class ReadView:
    __slots__ = ("_aggregate", "_allowed", "_reading")

    def __init__(
        self,
        reading: Callable[[], AbstractContextManager[Tx]],
        aggregate: str,
        allowed: frozenset[str],
    ) -> None:
        self._reading = reading
        self._aggregate = aggregate
        self._allowed = allowed

    def __repr__(self) -> str:
        return f"<reads of {self._aggregate}>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in self._allowed:
            raise AttributeError(f"{name!r} is not a read of {self._aggregate}")
        aggregate, reading = self._aggregate, self._reading

        def read(*args: Any, **kwargs: Any) -> Any:
            with reading() as tx:
                return getattr(getattr(tx, aggregate), name)(*args, **kwargs)

        read.__name__ = name
        return read


def _methods(protocol: type) -> set[str]:
    return {
        name
        for klass in protocol.__mro__
        for name, value in vars(klass).items()
        if callable(value) and not name.startswith("_")
    }
