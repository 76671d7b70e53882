#!/usr/bin/env python3
"""The Python side of futuretop's engine benchmark (benches/engine.rs), same workloads.

Runs on CPython's concurrent.futures.ThreadPoolExecutor with max_workers = the CPU count:

- submit + result, map, and as_completed over 100,000 trivial tasks (the identity of i);
- wait(ALL_COMPLETED) and as_completed over 100,000 already-finished futures
  (Future() + set_result);
- the memory of a pending Future: sys.getsizeof summed over the objects the future alone
  owns, and tracemalloc's count of the bytes still held after creating 100,000 futures
  (bare Future() and submit() to a pool whose only worker is blocked).

Prints microseconds per task (median of ROUNDS runs) and bytes per future.
Run: python3 benches/python_baseline.py [--tasks N] [--rounds R]
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc
import types
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait


def identity(i):
    return i


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def submit_result(ex, n):
    fs = [ex.submit(identity, i) for i in range(n)]
    total = sum(f.result() for f in fs)
    assert total == n * (n - 1) // 2


def map_(ex, n):
    total = sum(ex.map(identity, range(n)))
    assert total == n * (n - 1) // 2


def submit_as_completed(ex, n):
    fs = [ex.submit(identity, i) for i in range(n)]
    total = sum(f.result() for f in as_completed(fs))
    assert total == n * (n - 1) // 2


def finished_futures(n):
    fs = []
    for i in range(n):
        f = Future()
        f.set_result(i)
        fs.append(f)
    return fs


def wait_finished(fs):
    done, not_done = wait(fs, return_when=ALL_COMPLETED)
    assert len(done) == len(fs) and not not_done


def as_completed_finished(fs):
    count = 0
    for _ in as_completed(fs):
        count += 1
    assert count == len(fs)


SHARED = (type, types.ModuleType, types.FunctionType, types.CodeType, str, int, float, bool, type(None))


def owned_size(root):
    """sys.getsizeof summed over root and every object reachable from it, except shared
    ones (types, modules, functions, strings, numbers, None)."""
    seen = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
        if hasattr(obj, "__dict__") and not isinstance(obj, SHARED):
            stack.append(obj.__dict__)
    return total


def traced_per_item(make, n):
    """Bytes tracemalloc sees still allocated per item after make(n) built n items."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = make(n)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return (after - before) / n


def make_futures(n):
    out = [None] * n
    for i in range(n):
        out[i] = Future()
    return out


def memory(n):
    f = Future()
    getsizeof_future = owned_size(f)
    getsizeof_shallow = sys.getsizeof(f)
    traced_new = traced_per_item(make_futures, n)

    # submit() to a one-worker pool whose worker is blocked: the futures stay pending and
    # each also holds a queued work item.
    started = threading.Event()
    release = threading.Event()

    def block():
        started.set()
        release.wait()

    with ThreadPoolExecutor(max_workers=1) as ex:
        blocker = ex.submit(block)
        started.wait()

        def submit_pending(n):
            out = [None] * n
            for i in range(n):
                out[i] = ex.submit(identity, i)
            return out

        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        pending = submit_pending(n)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert not any(p.done() for p in pending)
        traced_submit = (after - before) / n
        release.set()
        blocker.result()
        assert sum(p.result() for p in pending) == n * (n - 1) // 2
    return getsizeof_shallow, getsizeof_future, traced_new, traced_submit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, rounds = args.tasks, args.rounds
    workers = os.cpu_count() or 1

    print(f"== Python {platform.python_version()} concurrent.futures: {n} trivial tasks, "
          f"{workers} workers, median of {rounds} rounds")
    runs = {"submit+result": [], "map": [], "as_completed": []}
    with ThreadPoolExecutor(max_workers=workers) as ex:
        submit_result(ex, 1000)  # start the threads
        for _ in range(rounds):
            runs["submit+result"].append(timed(lambda: submit_result(ex, n)))
            runs["map"].append(timed(lambda: map_(ex, n)))
            runs["as_completed"].append(timed(lambda: submit_as_completed(ex, n)))
    for name, times in runs.items():
        print(f"{name:<24} {statistics.median(times) * 1e6 / n:>8.3f} us/task")

    wait_runs, ac_runs = [], []
    for _ in range(rounds):
        fs = finished_futures(n)
        wait_runs.append(timed(lambda: wait_finished(fs)))
        ac_runs.append(timed(lambda: as_completed_finished(fs)))
        del fs
    print(f"wait(ALL_COMPLETED) over {n} finished futures: {statistics.median(wait_runs) * 1e9 / n:.1f} ns/future")
    print(f"as_completed over {n} finished futures:       {statistics.median(ac_runs) * 1e9 / n:.1f} ns/future")

    shallow, owned, traced_new, traced_submit = memory(n)
    print()
    print(f"== memory of a pending Future ({n} futures)")
    print(f"sys.getsizeof(Future()):                  {shallow:>7.1f} bytes (the object alone)")
    print(f"sys.getsizeof over what a Future owns:    {owned:>7.1f} bytes")
    print(f"tracemalloc, Future():                    {traced_new:>7.1f} bytes/future")
    print(f"tracemalloc, submit() to a blocked pool:  {traced_submit:>7.1f} bytes/future (includes the work item)")


if __name__ == "__main__":
    main()
