"""Prefect's Python client reading one tag limit, for benches/read_throughput.rs.

Usage: python read_throughput.py <tag> <requests> <in flight>   (PREFECT_API_URL set)
Prints "<ops per second> <client CPU ms per op>".
"""
import asyncio
import sys
import time

from prefect.client.orchestration import get_client

tag, requests, in_flight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


async def main():
    async with get_client() as client:
        for _ in range(20):  # warm up connections
            await client.read_concurrency_limit_by_tag(tag)
        semaphore = asyncio.Semaphore(in_flight)

        async def one():
            async with semaphore:
                await client.read_concurrency_limit_by_tag(tag)

        cpu, wall = time.process_time(), time.perf_counter()
        if in_flight == 1:
            for _ in range(requests):
                await client.read_concurrency_limit_by_tag(tag)
        else:
            await asyncio.gather(*(one() for _ in range(requests)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{requests / wall} {cpu / requests * 1000}")


asyncio.run(main())
