"""Where the independent pieces of a selection run: in this process, or as Ray tasks.

A stage that splits into independent pieces (TopoPrune's per-class local topology and flow, the
placement of samples on a manifold fitted to a sample of them) hands them to
:func:`map_tasks` instead of looping itself. The engine is chosen once per call of
:func:`topodata.select.select` with :func:`use_engine`:

- ``'inprocess'`` (default): a plain loop, in order, in this process;
- ``'ray'``: one Ray task per piece (:mod:`topodata._ray`), on a local Ray or the cluster at
  ``ray_address``. Ray is an optional extra (``pip install topodata[ray]``).

Both engines run the same functions on the same pieces with the same thread count
(``$TOPODATA_THREADS``, passed to each task), so the same seed gives the same result.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ._threads import canonical_threads, thread_count
from ._validation import TopodataInputError, check_options

__all__ = ["ENGINES", "check_engine", "use_engine", "current_engine", "map_tasks", "InProcessEngine",
           "share"]

ENGINES = ("inprocess", "ray")


class InProcessEngine:
    """Runs the pieces one after the other in this process."""

    name = "inprocess"

    def put(self, value: Any) -> Any:
        return value

    def map(self, func: Callable[..., Any], args: Sequence[tuple], *, desc: str | None = None) -> list[Any]:
        with canonical_threads():
            return [func(*a) for a in args]

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name}


_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("topodata_engine", default=None)


def check_engine(engine: Any, ray_address: Any = None) -> str:
    """Validate ``engine`` (and that Ray is importable for ``'ray'``) before any work starts.

    Raises
    ------
    TopodataInputError
        Unknown engine; ``ray_address`` without ``engine='ray'``; ``'ray'`` without Ray installed.
    """
    check_options(engine, "engine", ENGINES)
    if ray_address is not None and engine != "ray":
        raise TopodataInputError(f"ray_address={ray_address!r} needs engine='ray'; got engine={engine!r}")
    if engine == "ray":
        from ._ray import ray_available

        if not ray_available():
            raise TopodataInputError("engine='ray' needs Ray: pip install 'topodata[ray]' (or pip install ray)")
    return engine


@contextmanager
def use_engine(engine: str = "inprocess", *, ray_address: str | None = None) -> Iterator[Any]:
    """Make ``engine`` the one :func:`map_tasks` uses inside the block; yields the engine object.

    ``'ray'`` connects to ``ray_address`` (``'auto'`` = the cluster this machine belongs to) or,
    when None, to a running local Ray if this process started one, else starts a local Ray with
    this machine's CPUs; a Ray started here is shut down on exit.
    """
    check_engine(engine, ray_address)
    if engine == "ray":
        from ._ray import RayEngine

        eng = RayEngine(address=ray_address)
    else:
        eng = InProcessEngine()
    token = _CURRENT.set(eng)
    try:
        yield eng
    finally:
        _CURRENT.reset(token)
        close = getattr(eng, "close", None)
        if close is not None:
            close()


def current_engine() -> Any:
    """The engine of the enclosing :func:`use_engine` block; in-process outside any block."""
    eng = _CURRENT.get()
    return eng if eng is not None else InProcessEngine()


def map_tasks(func: Callable[..., Any], args: Sequence[tuple], *, desc: str | None = None) -> list[Any]:
    """``[func(*a) for a in args]`` on the current engine, results in the order of ``args``.

    ``func`` must be a module-level function (Ray imports it by name in its workers); each call
    runs with the canonical thread count of the caller.
    """
    return current_engine().map(func, list(args), desc=desc)


def share(value: Any) -> Any:
    """Put a large read-only value where every task can read it once (Ray's object store);
    in-process it is the value itself. Pass the result inside ``args`` of :func:`map_tasks`."""
    return current_engine().put(value)


def threads_for_tasks() -> int:
    """The thread count tasks must run with (the caller's canonical count)."""
    return thread_count()
