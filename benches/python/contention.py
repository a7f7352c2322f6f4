"""Prefect's own Python client on the contention scenario of benches/contention.rs.

Usage: python contention.py <limit name> <tasks> <acquisitions> <hold seconds>
(PREFECT_API_URL set). Prints the number of HTTP requests it sent on the last line.
"""
import asyncio
import sys

import httpx
from prefect.concurrency.asyncio import concurrency

name, tasks, acquisitions, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
requests = 0
_send = httpx.AsyncClient.send


async def counting_send(self, request, *args, **kwargs):
    global requests
    requests += 1
    return await _send(self, request, *args, **kwargs)


httpx.AsyncClient.send = counting_send


async def task(count):
    for _ in range(count):
        async with concurrency(name, occupy=1, strict=True):
            await asyncio.sleep(hold)


async def main():
    await asyncio.gather(*(task(acquisitions // tasks) for _ in range(tasks)))


asyncio.run(main())
print(requests)
