"""Send a breaking-news push to every device of an audience: the demo's `breaking-push`.

It fans the notification out with an async HTTP client (httpx, many requests in flight
over a few keep-alive connections) to the push service at ``NEWSROOM_PUSH_URL``; when
that is not set it starts the stand-in service of :mod:`newsroom.tools.push_service`
in this process, so that the demo shows a real fan-out and its timing on any machine.

    python3 -m newsroom.tools.push --title "Quake" --url https://news.example/q --audience ios
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field

from .push_service import PushService

AUDIENCES = ("all", "ios", "android")


@dataclass
class Tally:
    delivered: int = 0
    unregistered: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def devices(audience: str, count: int) -> list[str]:
    """The simulated device list: push tokens, two Android phones for every iPhone."""
    found = []
    for index in range(count):
        platform = "ios" if index % 3 == 0 else "android"
        if audience in ("all", platform):
            found.append(f"{platform}-{index:07d}")
    return found


async def fan_out(
    base_url: str, tokens: list[str], title: str, url: str, concurrency: int
) -> Tally:
    """Sends to every token with ``concurrency`` requests in flight.

    Each sender has its own client with one keep-alive connection: one shared pool of
    many connections spends more time choosing a connection than sending.
    """
    import httpx

    tally = Tally()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for token in tokens:
        queue.put_nowait(token)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0) as client:
            while not queue.empty():
                token = queue.get_nowait()
                began = time.perf_counter()
                try:
                    answer = await client.post(
                        "/v1/send", json={"token": token, "title": title, "url": url}
                    )
                except httpx.HTTPError:
                    tally.failed += 1
                    continue
                tally.latencies_ms.append((time.perf_counter() - began) * 1000)
                if answer.status_code == 200:
                    tally.delivered += 1
                elif answer.status_code == 410:
                    tally.unregistered += 1
                else:
                    tally.failed += 1

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return tally


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def push(title: str, url: str, audience: str, count: int, concurrency: int) -> int:
    tokens = devices(audience, count)
    print(f"push: {title!r} -> {url} for {audience}: {len(tokens)} devices", flush=True)
    service = None
    base_url = os.environ.get("NEWSROOM_PUSH_URL", "").rstrip("/")
    if not base_url:
        service = PushService()
        base_url = f"http://127.0.0.1:{await service.start()}"
        print(f"push: using the stand-in push service at {base_url}", flush=True)
    began = time.perf_counter()
    try:
        tally = await fan_out(base_url, tokens, title, url, concurrency)
    finally:
        if service is not None:
            await service.close()
    took = time.perf_counter() - began
    rate = len(tokens) / took if took else 0.0
    print(
        f"push: {tally.delivered} delivered, {tally.unregistered} unregistered, "
        f"{tally.failed} failed in {took:.2f} s ({rate:.0f}/s; "
        f"p50 {percentile(tally.latencies_ms, 0.5):.1f} ms, "
        f"p99 {percentile(tally.latencies_ms, 0.99):.1f} ms per request)",
        flush=True,
    )
    return 1 if tally.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a breaking-news push.")
    parser.add_argument("--title", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--audience", choices=AUDIENCES, default="all")
    parser.add_argument(
        "--devices", type=int, default=int(os.environ.get("NEWSROOM_DEVICES", "1000"))
    )
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args(argv)
    try:
        import httpx  # noqa: F401  (checked here for a clear message)
    except ImportError:
        print(
            "push: this tool needs httpx; run it with the Python that has jobdeck installed "
            "(activate its virtual environment)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(
        push(options.title, options.url, options.audience, options.devices, options.concurrency)
    )


if __name__ == "__main__":
    sys.exit(main())
