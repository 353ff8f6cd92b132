"""Runs the SQS-compatible endpoint alone, for tests that need a real process to kill.

    python tests/integration/sqs_server.py --store URL --port N [--verify-signatures]

With ``--verify-signatures`` only requests signed with the credentials of
``jobdeck.queues.sigv4.load_credentials`` (from the environment) are served.

Prints ``ready`` on stdout once it accepts connections; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from jobdeck.clock import SystemClock
from jobdeck.queues.endpoint import serve_sqs
from jobdeck.queues.sigv4 import load_credentials
from jobdeck.store import open_store


async def _serve(store_url: str, host: str, port: int, verify: bool) -> None:
    store = open_store(store_url)
    started = asyncio.Event()
    credentials = load_credentials(os.environ) if verify else None
    serving = asyncio.create_task(
        serve_sqs(store, SystemClock(), host, port, started, credentials=credentials)
    )
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
    parser.add_argument("--verify-signatures", action="store_true")
    args = parser.parse_args()
    # uvloop, as a production server would run; plain asyncio where it is missing.
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args.store, args.host, args.port, args.verify_signatures))
    else:
        uvloop.run(_serve(args.store, args.host, args.port, args.verify_signatures))
    sys.exit(0)


if __name__ == "__main__":
    main()
