"""A canonical thread count for the stages whose floating-point result depends on it.

torch splits reductions (scatter-adds in a backward pass, matrix products, convolutions) into
one chunk per thread, so the same inputs and seed give different low bits, and then different
picks, under ``OMP_NUM_THREADS=1`` and ``2``. Stages that feed the selection run inside
:func:`canonical_threads`, which fixes torch's, OpenMP's and the BLAS libraries' thread counts to
``$TOPODATA_THREADS`` (default 1) and restores them afterwards. The count is recorded in the
manifests and is part of the embedding cache key. Measured stage by stage on digits, the proxy
training and the topological displacement changed with the thread count; the FAISS kNN graph
and UMAP (``n_jobs=1``) did not.
"""

from __future__ import annotations

import functools
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from ._validation import TopodataInputError

__all__ = ["THREADS_ENV", "thread_count", "canonical_threads", "deterministic", "cpu_kernels"]

THREADS_ENV = "TOPODATA_THREADS"
DEFAULT_THREADS = 1

F = TypeVar("F", bound=Callable[..., Any])


def thread_count() -> int:
    """The canonical count: ``$TOPODATA_THREADS`` if set (a positive int), else 1.

    Raises
    ------
    TopodataInputError
        ``TOPODATA_THREADS`` is not a positive integer.
    """
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return DEFAULT_THREADS
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise TopodataInputError(f"{THREADS_ENV} must be a positive integer; got {text!r}")
    return n


@contextmanager
def canonical_threads(n: int | None = None) -> Iterator[int]:
    """Run the block with ``n`` threads (default :func:`thread_count`) in torch, OpenMP and BLAS.

    Yields the count. torch's setting is restored on exit, as are the libraries' limits
    (threadpoolctl).

    Examples
    --------
    >>> from topodata._threads import canonical_threads
    >>> with canonical_threads(1) as n:
    ...     n
    1
    """
    n = thread_count() if n is None else int(n)
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            if torch is not None and before is not None and torch.get_num_threads() != before:
                torch.set_num_threads(before)


def cpu_kernels() -> str:
    """The CPU and the kernel set torch dispatches to, e.g. ``'x86_64 AVX512'``.

    The thread count fixes the order of the float sums on one machine; across machines the kernel
    set (AVX512, AVX2, ...) changes the low bits of convolutions too, so a training run repeats to the
    last digit only where both match. Recorded beside the versions of every bench and ``topodata train``.
    """
    import platform

    import torch

    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def deterministic(func: F) -> F:
    """Decorator: run ``func`` inside :func:`canonical_threads` (torch imported first)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch  # noqa: F401  (so that its thread count is set too)

        with canonical_threads():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
