"""Several engines on one store: nodes, the leader's lease, fencing (see docs/ha.md)."""
