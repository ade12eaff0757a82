"""A TCP proxy that delays every byte by half a round-trip time in each direction (a network, simulated).

    .venv/bin/python bench/latency_proxy.py --listen 127.0.0.1:6543 --upstream 127.0.0.1:5432 --rtt-ms 1

A Lambda function and its RDS database talk over a network with a round trip of roughly 0.3-1 ms; loopback has
about 0.03 ms. Benchmarks pass ``--rtt-ms`` to compare appliers under a realistic latency. Latency only:
bandwidth is not limited, and data is never reordered. Runs in its own process so that it does not compete with
the measured code for the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        while True:
            data = await reader.read(1 << 16)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), deliver())
    except (ConnectionError, OSError):
        writer.close()


async def _serve(listen: tuple[str, int], upstream: str, delay: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if upstream.startswith("unix:"):
            server_r, server_w = await asyncio.open_unix_connection(upstream[len("unix:") :])
        else:
            server_r, server_w = await asyncio.open_connection(*_address(upstream))
        await asyncio.gather(_pipe(client_r, server_w, delay), _pipe(server_r, client_w, delay))

    server = await asyncio.start_server(handle, *listen)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="host:port to accept connections on")
    parser.add_argument("--upstream", required=True, help="host:port of the real server, or unix:/path/to/socket")
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add, in milliseconds")
    args = parser.parse_args(argv)
    asyncio.run(_serve(_address(args.listen), args.upstream, args.rtt_ms / 2000))


if __name__ == "__main__":
    main()
