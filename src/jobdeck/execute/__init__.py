"""Running programs: pools (cgroups v1/v2 or per-process limits) and the run shim.

The engine builds a :class:`~jobdeck.execute.spec.RunSpec` with the
:class:`~jobdeck.execute.spec.Isolation` that :class:`~jobdeck.execute.pools.PoolManager`
gives it, starts it with :func:`~jobdeck.execute.launch.launch`, and later reads
:func:`~jobdeck.execute.launch.result` or, after a restart, asks
:func:`~jobdeck.execute.launch.probe`. The shim (:mod:`jobdeck.execute.shim`) supervises
each run on its own, so runs outlive the engine.
"""

from jobdeck.execute.launch import RunHandle, cancel, launch, probe, result
from jobdeck.execute.spec import Isolation, RunResult, RunSpec, ShimInfo

__all__ = [
    "Isolation",
    "RunHandle",
    "RunResult",
    "RunSpec",
    "ShimInfo",
    "cancel",
    "launch",
    "probe",
    "result",
]
