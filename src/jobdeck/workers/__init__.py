"""Resident workers: the supervisor that keeps their processes running, singleton
leases, and the autoscale decision (a pure function of the backlog and ``now``)."""
