"""Cost of one synchronize() round trip, next to a plain await and SQLAlchemy.

Run: ``python bench/synchronize.py`` (needs ``sqlalchemy``).  Prints a table
of microseconds per round trip, best of several repeats, all measured in
this one run on this machine, and the ratio to SQLAlchemy's ``await_only``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.util.concurrency import await_only, greenlet_spawn

from aiopyramid.helpers import spawn_greenlet, synchronize


async def returns_at_once() -> int:
    return 1


async def yields_once() -> int:
    await asyncio.sleep(0)
    return 1


WORKLOADS = {"returns at once": returns_at_once, "awaits sleep(0)": yields_once}


def plain_await(work: Callable[[], Awaitable[int]], n: int) -> Awaitable[None]:
    async def run() -> None:
        for _ in range(n):
            await work()

    return run()


def aiopyramid_synchronize(
    work: Callable[[], Awaitable[int]], n: int
) -> Awaitable[None]:
    waiting = synchronize(work)

    def body() -> None:
        for _ in range(n):
            waiting()

    return spawn_greenlet(body)


def sqlalchemy_await_only(
    work: Callable[[], Awaitable[int]], n: int
) -> Awaitable[None]:
    def body() -> None:
        for _ in range(n):
            await_only(work())

    return greenlet_spawn(body)


CONTENDERS = {
    "plain await": plain_await,
    "aiopyramid synchronize": aiopyramid_synchronize,
    "sqlalchemy await_only": sqlalchemy_await_only,
}


def measure(contender, work, n: int, repeats: int) -> float:
    """Best time per round trip, in microseconds, over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        loop = asyncio.new_event_loop()
        try:
            started = time.perf_counter()
            loop.run_until_complete(contender(work, n))
            best = min(best, time.perf_counter() - started)
        finally:
            loop.close()
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="round trips per run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    header = f"{'workload':<18}{'contender':<26}{'µs/op':>8}{'vs await_only':>15}"
    print(header)
    print("-" * len(header))
    for label, work in WORKLOADS.items():
        results = {
            name: measure(contender, work, args.n, args.repeats)
            for name, contender in CONTENDERS.items()
        }
        reference = results["sqlalchemy await_only"]
        for name, micros in results.items():
            print(f"{label:<18}{name:<26}{micros:>8.2f}{micros / reference:>14.2f}x")
    print("target: aiopyramid synchronize <= 3.00x sqlalchemy await_only")


if __name__ == "__main__":
    main()
