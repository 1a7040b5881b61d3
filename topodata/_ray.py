"""The Ray engine of :mod:`topodata._engine`: each piece of a stage is one Ray task.

``import ray`` happens only here and only when the engine is used, so Ray stays an optional extra.
Large read-only inputs go to Ray's object store once (:meth:`RayEngine.put`) and every task reads
them from there without a copy (numpy arrays are zero-copy in Ray's object store).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Sequence

from ._threads import canonical_threads, thread_count

__all__ = ["RayEngine", "ray_available", "run_piece", "LOCAL_SYSTEM_CONFIG"]

#: Ray settings of a local Ray started here: workers at the driver's own priority.
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}


def ray_available() -> bool:
    """True when ``import ray`` would work (checked without importing it)."""
    return importlib.util.find_spec("ray") is not None


def run_piece(func: Callable[..., Any], n_threads: int, *args: Any) -> Any:
    """Body of every task: ``func(*args)`` with the driver's canonical thread count, so that a
    piece computes the same bits in a Ray worker as in the driver."""
    with canonical_threads(n_threads):
        return func(*args)


class RayEngine:
    """Runs the pieces as Ray tasks, results in submission order.

    Each task reserves as many CPUs as the threads it runs with (the driver's canonical count), so
    that Ray never starts more threads than a node has cores: two 2-thread tasks on 2 cores spin
    against each other (measured: the displacement flow took 108 s instead of 6 s at 250,000 rows).

    Parameters
    ----------
    address : str or None
        ``ray.init(address=...)``: ``'auto'`` or ``'ray://host:10001'`` for a cluster. None: use the
        Ray this process already initialised, else start a local one (shut down by :meth:`close`).
    """

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        import ray

        self.address = address
        self._owned = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is not None:
                kwargs["address"] = address
            else:
                # Ray starts its workers 15 nice levels below the driver: on a busy machine they then
                # get ~1% of a core (measured: importing scikit-learn took 160 s in a worker)
                kwargs["_system_config"] = LOCAL_SYSTEM_CONFIG
            ray.init(**kwargs)
            self._owned = True
        self._remote = ray.remote(num_cpus=1)(run_piece)

    def put(self, value: Any) -> Any:
        import ray

        return ray.put(value)

    def map(self, func: Callable[..., Any], args: Sequence[tuple], *, desc: str | None = None) -> list[Any]:
        import ray

        n = thread_count()
        remote = self._remote.options(num_cpus=n)
        refs = [remote.remote(func, n, *a) for a in args]
        return ray.get(refs)

    def describe(self) -> dict[str, Any]:
        import ray

        res = ray.cluster_resources()
        return {"engine": self.name, "ray_address": self.address, "ray_version": ray.__version__,
                "ray_cpus": float(res.get("CPU", 0)), "ray_gpus": float(res.get("GPU", 0)),
                "ray_nodes": len(ray.nodes())}

    def close(self) -> None:
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False
