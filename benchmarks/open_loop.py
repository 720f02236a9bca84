"""Open-loop HTTP load: requests sent on a fixed schedule whatever the answers, each latency
counted from the request's scheduled time.

    python -m benchmarks.open_loop --url http://127.0.0.1:8642/healthz --rate 200 [--seconds 10]

A closed-loop client (wrk, paced or not) sends a connection's next request only after the
previous answer: while the server stalls it stops sending, the requests that would have
waited are never made, and the stall hides from the percentiles (coordinated omission).
Here request i is due at start + i / rate and is sent then, on a connection of its own (an
idle one or a new one), whatever the requests before it are doing; its latency runs from its
due time to the end of its answer, so a stall counts for every request due during it. The
send lag (sent minus due) is reported beside: a client that cannot keep its schedule, being
short of CPU next to the server, shows there, and its lateness is in the latencies too
rather than hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from benchmarks.listings_search import percentile


@dataclass
class OpenLoopFigures:
    rate: float  # requests due per second
    seconds: float  # the schedule's length
    latencies_ms: list[float] = field(default_factory=list)  # due → answered (or failed)
    send_lags_ms: list[float] = field(default_factory=list)  # due → request written
    failures: int = 0  # answers other than 2xx, connection errors and timeouts
    elapsed: float = 0.0  # first due time → last answer

    @property
    def sent(self) -> int:
        return len(self.latencies_ms)

    @property
    def achieved(self) -> float:
        """Answers per second over the whole run."""
        return self.sent / self.elapsed if self.elapsed else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def max(self) -> float:
        return max(self.latencies_ms)

    @property
    def lag_p99(self) -> float:
        return percentile(self.send_lags_ms, 0.99)


def http_request(method: str, path: str, host: str, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> bytes:
    """One HTTP/1.1 request as bytes, asking to keep the connection open."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive",
             f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response whole; its status, and whether the connection may be reused."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    else:
        await reader.read()  # the body runs to the connection's end
        return status, False
    return status, headers.get("connection") != "close" and status_line.startswith(b"HTTP/1.1")


class _Client:
    """Sends each request when it is due, on an idle connection or a new one."""

    def __init__(self, host: str, port: int, request: Callable[[int], bytes],
                 figures: OpenLoopFigures, timeout: float, max_connections: int) -> None:
        self.host, self.port, self.request = host, port, request
        self.figures, self.timeout = figures, timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        # Past this many requests in flight, a due request waits for one to end, and the
        # wait is in its latency: the schedule is kept, only the sending is late.
        self.slots = asyncio.Semaphore(max_connections)

    async def send(self, n: int, due: float) -> None:
        loop = asyncio.get_running_loop()
        status: int | None = None
        async with self.slots:
            try:
                async with asyncio.timeout(self.timeout):
                    status, sent_at = await self._exchange(self.request(n))
                self.figures.send_lags_ms.append((sent_at - due) * 1000)
            except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError):
                pass
        self.figures.latencies_ms.append((loop.time() - due) * 1000)
        self.figures.failures += status is None or not 200 <= status < 300

    async def _exchange(self, payload: bytes) -> tuple[int, float]:
        """Send on an idle connection, or on a new one if it was closed unused meanwhile."""
        if self.idle:
            try:
                return await self._on(self.idle.pop(), payload)
            except ConnectionError:  # nothing was answered: the server had closed it
                pass
        return await self._on(await asyncio.open_connection(self.host, self.port), payload)

    async def _on(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                  payload: bytes) -> tuple[int, float]:
        """The answer's status and when the request was written."""
        reader, writer = connection
        reusable = False
        try:
            writer.write(payload)
            await writer.drain()
            sent_at = asyncio.get_running_loop().time()
            status, reusable = await _read_answer(reader)
        finally:
            if reusable:
                self.idle.append(connection)
            else:
                writer.close()
        return status, sent_at

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _run(host: str, port: int, request: Callable[[int], bytes], rate: float,
               seconds: float, timeout: float, max_connections: int) -> OpenLoopFigures:
    figures = OpenLoopFigures(rate, seconds)
    client = _Client(host, port, request, figures, timeout, max_connections)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    sending = []
    for n in range(round(rate * seconds)):
        due = start + n / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        sending.append(asyncio.create_task(client.send(n, due)))
    await asyncio.gather(*sending)
    figures.elapsed = loop.time() - start
    await client.close()
    return figures


def run(url: str, request: Callable[[int], bytes], *, rate: float, seconds: float,
        timeout: float = 10.0, max_connections: int = 1000) -> OpenLoopFigures:
    """Send request(n) to the server of `url` at `rate` per second for `seconds`."""
    parts = urlsplit(url)
    # No collection pauses in the client while it keeps time (a few thousand small objects).
    gc.disable()
    try:
        return asyncio.run(_run(parts.hostname or "127.0.0.1", parts.port or 80, request, rate,
                                seconds, timeout, max_connections))
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="GET this URL")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    request = http_request("GET", parts.path or "/", parts.netloc)
    figures = run(args.url, lambda _: request, rate=args.rate, seconds=args.seconds)
    print(f"GET {args.url} open-loop at {figures.rate:,.0f}/s for {figures.seconds:g} s: "
          f"{figures.sent:,} requests, {figures.achieved:,.0f} answered/s, "
          f"{figures.failures} failed")
    print(f"latency from each request's due time: p50 {figures.p50:.1f} ms, "
          f"p99 {figures.p99:.1f} ms, max {figures.max:.1f} ms; "
          f"send lag p99 {figures.lag_p99:.1f} ms")


if __name__ == "__main__":
    main()
