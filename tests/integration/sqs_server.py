"""Runs the SQS-compatible endpoint alone, for tests that need a real process to kill.

    python tests/integration/sqs_server.py --store URL --port N

Prints ``ready`` on stdout once it accepts connections; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from jobdeck.clock import SystemClock
from jobdeck.queues.endpoint import serve_sqs
from jobdeck.store import open_store


async def _serve(store_url: str, host: str, port: int) -> None:
    store = open_store(store_url)
    started = asyncio.Event()
    serving = asyncio.create_task(serve_sqs(store, SystemClock(), host, port, started))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, serving.cancel)
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if started.is_set():
        print("ready", flush=True)
    try:
        await serving
    except asyncio.CancelledError:
        pass
    finally:
        waiting.cancel()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # uvloop, as a production server would run; plain asyncio where it is missing.
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args.store, args.host, args.port))
    else:
        uvloop.run(_serve(args.store, args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
