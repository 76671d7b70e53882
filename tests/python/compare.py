#!/usr/bin/env python3
"""Runs a futuretop plan with Python's concurrent.futures, for tests/program/python_compare.rs.

Reads on stdin the plan the Rust test loaded from a task file:

    {"pools": [{"name": "io", "kind": "thread", "max_workers": 4}, ...],
     "tasks": [{"name": "small", "pool": 0, "call": {"Pow": {"base": 2, "exp": 10}}}, ...]}

(`call` is futuretop's `Builtin` as serde writes it; `pool` and `WaitOn.task` are indices),
submits every task in file order to a ThreadPoolExecutor or ProcessPoolExecutor per pool,
waits for all of them, and prints one JSON object, task name -> final state:

    {"small": {"state": "done", "result": 1024},
     "boom": {"state": "exception", "error": "TaskError"}, ...}

Results are written as futuretop writes them: None is null, and an int beyond 64 bits
is a string of digits (futuretop's pow gives those as strings). Error types are Python's
class names (TaskError is defined here, as futuretop's `fail` raises it).

Only what Python can express is accepted: no `depends_on`, no `command`, no `fetch_url`,
and `wait_on`/`submit` only in thread pools (in a process pool they need the parent's
futures, which Python's workers cannot reach). Anything else exits with status 3.
"""

import json
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait


class TaskError(Exception):
    """What futuretop's `fail(message)` raises."""


# --- the built-in callables, as plain module-level functions (picklable) -------------

def sleep(secs):
    time.sleep(secs)


def spin(secs):
    end = time.monotonic() + secs
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def power(base, exp):
    return base ** exp


def is_prime(n):
    # The concurrent.futures documentation's is_prime, as the seed has it.
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


def fail(message):
    raise TaskError(message)


def exit_worker(code):
    os._exit(code)


def crash():
    os.kill(os.getpid(), signal.SIGKILL)


def unsupported(why):
    print(f"compare.py: cannot express this in concurrent.futures: {why}", file=sys.stderr)
    sys.exit(3)


def simple(call):
    """(function, args) for a call that needs nothing but its arguments."""
    (name, a), = call.items()
    if name == "Crash":
        return crash, ()
    if name == "Sleep":
        return sleep, (a["secs"],)
    if name == "Spin":
        return spin, (a["secs"],)
    if name == "Pow":
        return power, (a["base"], a["exp"])
    if name == "IsPrime":
        return is_prime, (a["n"],)
    if name == "Fail":
        return fail, (a["message"],)
    if name == "Exit":
        return exit_worker, (a["code"],)
    return None


class Run:
    """The executors and the futures of one run; wait_on and submit reach them."""

    def __init__(self, plan):
        self.plan = plan
        self.executors = []
        for p in plan["pools"]:
            if p["kind"] == "thread":
                self.executors.append(ThreadPoolExecutor(max_workers=p["max_workers"]))
            elif p["kind"] == "process":
                ctx = multiprocessing.get_context("fork")
                self.executors.append(ProcessPoolExecutor(max_workers=p["max_workers"], mp_context=ctx))
            else:
                unsupported(f"a {p['kind']} pool")
        self.futures = [None] * len(plan["tasks"])
        self.submitted = threading.Condition()

    def future(self, index):
        # futuretop's wait_on waits for the task to be submitted; so does this.
        with self.submitted:
            self.submitted.wait_for(lambda: self.futures[index] is not None)
            return self.futures[index]

    def thread_call(self, call, own_pool):
        """(function, args) for a call run in a thread pool: wait_on and submit too."""
        s = simple(call)
        if s is not None:
            return s
        (name, a), = call.items()
        if name == "WaitOn":
            return (lambda task, timeout: self.future(task).result(timeout)), (a["task"], a["timeout"])
        if name == "Submit":
            inner = a["call"]
            pool = a["pool"]
            if self.plan["pools"][pool]["kind"] == "thread":
                fn, args = self.thread_call(inner, pool)
            else:
                fn, args = simple(inner) or unsupported(f"{inner} in a process pool")
            executor = self.executors[pool]
            return (lambda: executor.submit(fn, *args).result(a["timeout"])), ()
        return unsupported(name)

    def start(self):
        for i, t in enumerate(self.plan["tasks"]):
            if t.get("depends_on"):
                unsupported("depends_on")
            pool = t["pool"]
            if self.plan["pools"][pool]["kind"] == "thread":
                fn, args = self.thread_call(t["call"], pool)
            else:
                fn, args = simple(t["call"]) or unsupported(f"{t['call']} in a process pool")
            try:
                f = self.executors[pool].submit(fn, *args)
            except BrokenExecutor as e:
                # A pool that broke before this submit refuses it (whether it has broken
                # yet is a race, on either side); futuretop's runner then fails the task
                # with the same error (src/runner.rs, SubmitError::Broken).
                f = Future()
                f.set_exception(e)
            with self.submitted:
                self.futures[i] = f
                self.submitted.notify_all()

    def outcome(self):
        wait(self.futures)
        out = {}
        for t, f in zip(self.plan["tasks"], self.futures):
            if f.cancelled():
                out[t["name"]] = {"state": "cancelled"}
            elif f.exception() is not None:
                out[t["name"]] = {"state": "exception", "error": type(f.exception()).__name__}
            else:
                out[t["name"]] = {"state": "done", "result": as_futuretop(f.result())}
        for e in self.executors:
            e.shutdown(wait=True)
        return out


def as_futuretop(v):
    if isinstance(v, int) and not isinstance(v, bool) and not -(2 ** 63) <= v < 2 ** 63:
        return str(v)
    return v


def main():
    plan = json.load(sys.stdin)
    run = Run(plan)
    run.start()
    json.dump(run.outcome(), sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
