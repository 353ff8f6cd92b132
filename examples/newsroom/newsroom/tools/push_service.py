"""A stand-in for a mobile push service (think APNs or FCM), for the demo.

``POST /v1/send`` with ``{"token": ..., "title": ..., "url": ...}`` answers 200 after a
few milliseconds, like a real gateway, and 410 for the tokens of devices that were
uninstalled. Standard library only, so that it runs anywhere; serve it on its own with
``python3 -m newsroom.tools.push_service --port 8099``, or let the push tool start one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import zlib

# One device in this many has been uninstalled: the gateway answers 410 for it.
UNREGISTERED_ONE_IN = 250


class PushService:
    def __init__(self, latency_ms: tuple[float, float] = (1.0, 8.0)) -> None:
        self.latency_ms = latency_ms
        self.delivered = 0
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._connection, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening and let open connections end (their clients hang up)."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.connections:
            await asyncio.wait(self.connections, timeout=5.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self.connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # HTTP/1.1 keep-alive: many requests on one connection
                request_line = await reader.readline()
                if not request_line:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, answer = await self._answer(request_line.decode("latin-1"), body)
                payload = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _answer(self, request_line: str, body: bytes) -> tuple[str, dict[str, object]]:
        method, path, _ = ([*request_line.split(" "), "", ""])[:3]
        if method != "POST" or path != "/v1/send":
            return "404 Not Found", {"error": "POST /v1/send"}
        try:
            message = json.loads(body)
            token = str(message["token"])
        except (ValueError, KeyError, TypeError):
            return "400 Bad Request", {"error": "a JSON body with a token"}
        await asyncio.sleep(random.uniform(*self.latency_ms) / 1000)
        if zlib.crc32(token.encode()) % UNREGISTERED_ONE_IN == 0:
            return "410 Gone", {"error": "unregistered", "token": token}
        self.delivered += 1
        return "200 OK", {"id": f"msg-{self.delivered}", "token": token}


async def serve(host: str, port: int) -> None:
    service = PushService()
    bound = await service.start(host, port)
    print(f"push service listening on http://{host}:{bound}/v1/send", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(options.host, options.port))


if __name__ == "__main__":
    main()
