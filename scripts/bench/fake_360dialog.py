"""A stand-in for 360dialog's POST /messages for benchmarks: answers every request after a
fixed delay (default 20 ms) with a Cloud API success body. asyncio with keep-alive, so one
process serves thousands of requests per second without a thread per connection.

    python3 fake_360dialog.py PORT [DELAY_MS]
"""

import asyncio
import itertools
import sys

PORT = int(sys.argv[1])
DELAY = float(sys.argv[2] if len(sys.argv) > 2 else 20) / 1000.0
COUNTER = itertools.count()


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(DELAY)
            body = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.bench.%d"}]}' % next(COUNTER)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
