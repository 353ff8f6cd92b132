"""The name of one engine's instance: light, for the CLI as well as the engine."""

from __future__ import annotations

import hashlib
from pathlib import Path


def instance_name(state_dir: Path, store_url: str | None) -> str:
    """Keeps the cgroups and run ownership of two engines on one host apart."""
    key = f"{state_dir.resolve()}|{store_url or ''}"
    return "e" + hashlib.sha256(key.encode()).hexdigest()[:11]
