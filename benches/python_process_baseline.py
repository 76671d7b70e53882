#!/usr/bin/env python3
"""The Python side of futuretop's process-pool benchmark (benches/process.rs), same workloads.

On CPython's concurrent.futures.ProcessPoolExecutor:

- round trip: submit(pow, 2, 10) then result(), one call at a time, on a one-worker pool
  (one call per message, one call at a time);
- map: map(pow, [2]*N, [10]*N) on 2 workers, chunksize=1 and chunksize=100;
- start-up: from the constructor to both of 2 workers having answered a call, for each
  start method (fork, forkserver, spawn);
- is_prime: the concurrent.futures documentation's ProcessPoolExecutor example
  (PRIMES, executor.map(is_prime, PRIMES)) with max_workers=2, and the same sequentially.

Prints a table, then one line of JSON (microseconds per task, milliseconds for the rest)
that benches/process.rs reads when it runs this script itself.
With --serve-startup it instead answers start-up measurements one at a time (a start
method on stdin, milliseconds on stdout), for the bench to pair with its own.
Run: python3 benches/python_process_baseline.py [--tasks N] [--rounds R]
"""

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time

PRIMES = [
    112272535095293,
    112582705942171,
    112272535095293,
    115280095190773,
    115797848077099,
    1099726899285419,
]


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False

    sqrt_n = int(math.floor(math.sqrt(n)))
    for i in range(3, sqrt_n + 1, 2):
        if n % i == 0:
            return False
    return True


def getpid():
    return os.getpid()


def median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def round_trip(ex, n):
    for _ in range(n):
        assert ex.submit(pow, 2, 10).result() == 1024


def map_(ex, n, chunksize):
    total = sum(ex.map(pow, [2] * n, [10] * n, chunksize=chunksize))
    assert total == 1024 * n


def startup(method):
    """Constructor to every one of 2 workers having answered a call (seconds)."""
    ctx = multiprocessing.get_context(method)
    start = time.perf_counter()
    ex = concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx)
    seen = set()
    while len(seen) < 2:
        seen.update(f.result() for f in [ex.submit(getpid) for _ in range(2)])
    elapsed = time.perf_counter() - start
    ex.shutdown()
    return elapsed


def primes_pool():
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as executor:
        results = list(executor.map(is_prime, PRIMES))
    assert results == [True, True, True, True, True, False]


def primes_sequential():
    assert [is_prime(n) for n in PRIMES] == [True, True, True, True, True, False]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--primes-rounds", type=int, default=3)
    parser.add_argument(
        "--serve-startup",
        action="store_true",
        help="read start methods from stdin, one a line; answer each with one start-up in ms",
    )
    args = parser.parse_args()
    if args.serve_startup:
        # benches/process.rs pairs each of its start-ups with one of these, taken the
        # same moment: this machine's speed drifts over minutes.
        for line in sys.stdin:
            print(f"{startup(line.strip()) * 1e3:.4f}", flush=True)
        return
    n, rounds = args.tasks, args.rounds

    out = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as ex:
        round_trip(ex, 100)  # warm up: the worker is started
        out["round_trip_us"] = median_time(lambda: round_trip(ex, n), rounds) / n * 1e6
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        map_(ex, 200, 1)
        out["map_c1_us"] = median_time(lambda: map_(ex, n, 1), rounds) / n * 1e6
        out["map_c100_us"] = median_time(lambda: map_(ex, n * 10, 100), rounds) / (n * 10) * 1e6
    for method in ("fork", "forkserver", "spawn"):
        out[f"startup_{method}_ms"] = statistics.median(startup(method) for _ in range(rounds)) * 1e3
    out["primes_pool_ms"] = median_time(primes_pool, args.primes_rounds) * 1e3
    out["primes_sequential_ms"] = median_time(primes_sequential, args.primes_rounds) * 1e3

    print(f"CPython {out['python']}, {out['cpus']} CPUs, median of {rounds} rounds")
    print(f"  round trip (submit + result, 1 worker) {out['round_trip_us']:10.1f} us/task")
    print(f"  map chunksize=1   (2 workers)          {out['map_c1_us']:10.1f} us/task")
    print(f"  map chunksize=100 (2 workers)          {out['map_c100_us']:10.1f} us/task")
    for method in ("fork", "forkserver", "spawn"):
        print(f"  start-up, 2 workers answering ({method:10}) {out[f'startup_{method}_ms']:7.1f} ms")
    print(f"  is_prime example, 2 workers            {out['primes_pool_ms']:10.1f} ms")
    print(f"  is_prime sequential                    {out['primes_sequential_ms']:10.1f} ms")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
