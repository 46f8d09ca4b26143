"""Fan a stage's independent jobs out: to a local process pool, or to a running Dask cluster.

The fan-out stages (render, encode_audio, degrade) map one function over many independent jobs.
:func:`fan_out` runs them in a local ``ProcessPoolExecutor`` (``fanout.engine: local``, each
stage's own workers, start method, initializer and chunking) or submits them to the Dask
distributed scheduler at ``fanout.address`` (``engine: dask``). Either way it yields the results
in job order, as ``Executor.map`` does, so a stage's outputs do not depend on where the jobs ran
nor on the order they finished in.

Dask rather than Ray: ``Client.submit``/``map`` and futures mirror ``concurrent.futures``, so
both engines share one code path; clusters on SLURM, PBS, Kubernetes or over SSH come from
dask-jobqueue, dask-kubernetes or ``dask ssh``; the wheels are pure Python (Ray's is large and
its actors are not needed here). A ``WorkerPlugin`` runs the initializer on each worker and
gives it the BLAS threads of the local pool (Dask's default, 1, changes some features' bits).

A Dask cluster's workers need this environment (pianoeval importable, FluidSynth for render)
and the repository at the same path, started from it: jobs name files relative to it, and the
workers write the outputs there (a shared file system). The working directory is checked first.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator

from pianoeval.config import Fanout

log = logging.getLogger(__name__)

LOCAL = Fanout(engine="local", address=None)  # the section model: pianoeval.config.Fanout


def fan_out(fn: Callable, jobs: Iterable, workers: int, fanout: Fanout = LOCAL, *,
            chunksize: int = 1, mp_context: str | None = None,
            initializer: Callable | None = None, initargs: tuple = ()) -> Iterator:
    """Yield ``fn(job)`` for each of ``jobs``, in job order. Local: in this process when
    ``workers <= 1``, else in a pool of ``workers`` processes (``mp_context``: a start method,
    None for the default), ``chunksize`` jobs per message. Dask: one task per ``chunksize``
    jobs on the cluster at ``fanout.address`` (its size, not ``workers``, sets the parallelism).
    ``initializer(*initargs)`` runs once in each process before its first job."""
    jobs = list(jobs)
    if fanout.engine == "dask":
        yield from _dask_map(fn, jobs, fanout.address, chunksize, initializer, initargs)
    elif workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, jobs)
    else:
        ctx = multiprocessing.get_context(mp_context) if mp_context else None
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer,
                                 initargs=initargs) as pool:
            yield from pool.map(fn, jobs, chunksize=chunksize)


def _run_chunk(chunk: list, fn: Callable) -> list:
    return [fn(job) for job in chunk]


def _cwd() -> str:
    return os.getcwd()


def _blas_threads() -> int:
    """This process's BLAS threads, which the local pool's forked workers inherit."""
    import numpy  # noqa: F401  (loads its OpenBLAS)
    from threadpoolctl import threadpool_info

    return max([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] or [1])


def _dask_map(fn, jobs, address, chunksize, initializer, initargs) -> Iterator:
    from distributed import Client, WorkerPlugin  # not imported by the local engine

    blas = _blas_threads()

    class Setup(WorkerPlugin):  # runs on each worker now and on any that joins later
        def setup(self, worker) -> None:
            # Dask starts workers with 1 BLAS thread, and BLAS results (the spectral encoder's
            # features) change with the thread count: the local pool's count, for the libraries
            # loaded later (environment) and those loaded already (threadpoolctl).
            from threadpoolctl import threadpool_limits

            os.environ.update(OPENBLAS_NUM_THREADS=str(blas), MKL_NUM_THREADS=str(blas))
            threadpool_limits(blas, user_api="blas")
            if initializer is not None:
                initializer(*initargs)

    with Client(address) as client:
        here = os.getcwd()
        elsewhere = {w: d for w, d in client.run(_cwd).items() if d != here}
        if elsewhere:
            raise RuntimeError(f"Dask workers at {address} run in {elsewhere}, not in {here}: "
                               "start them from the repository (jobs name relative paths)")
        log.info("%d jobs -> Dask at %s (%d workers, %d threads; %d BLAS threads each)",
                 len(jobs), address, len(client.nthreads()), sum(client.nthreads().values()),
                 blas)
        plugin = f"pianoeval-fanout-{os.getpid()}"
        client.register_plugin(Setup(), name=plugin)
        try:
            chunks = [jobs[i:i + chunksize] for i in range(0, len(jobs), chunksize)]
            futures = deque(client.map(_run_chunk, chunks, fn=fn, pure=False))
            while futures:  # in job order; a chunk's results leave the cluster once read
                yield from futures.popleft().result()
        finally:
            client.unregister_worker_plugin(plugin)
