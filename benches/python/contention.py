"""Prefect's own Python client on the contention scenario of benches/contention.rs.

Usage: python contention.py <limit name> <tasks> <acquisitions> <hold seconds> [<cap seconds>]
(PREFECT_API_URL set). With a cap above 0 it stops after that long (exiting at once: slots
still held then return when their leases expire). Prints on the last line
the acquisitions made, the HTTP requests sent, its CPU time in microseconds and its peak RSS in KiB.
"""
import asyncio
import os
import resource
import sys
import time

import httpx
from prefect.concurrency.asyncio import concurrency

name, tasks, acquisitions, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
cap = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
requests = 0
done = 0
_send = httpx.AsyncClient.send


async def counting_send(self, request, *args, **kwargs):
    global requests
    requests += 1
    return await _send(self, request, *args, **kwargs)


httpx.AsyncClient.send = counting_send


async def task(count):
    global done
    for _ in range(count):
        async with concurrency(name, occupy=1, strict=True):
            await asyncio.sleep(hold)
        done += 1


def report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_us = int((usage.ru_utime + usage.ru_stime) * 1_000_000)
    print(done, requests, cpu_us, usage.ru_maxrss, flush=True)


async def main():
    work = asyncio.gather(*(task(acquisitions // tasks) for _ in range(tasks)))
    if cap > 0:
        finished, _ = await asyncio.wait({work}, timeout=cap)
        if not finished:
            # At the cap: report and stop at once (cancelling thousands of waiters takes
            # minutes); the slots still held return when their leases expire.
            report()
            os._exit(0)
    else:
        await work


asyncio.run(main())
report()
