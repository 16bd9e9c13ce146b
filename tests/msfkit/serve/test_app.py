"""msfkit.serve.app: what the server's connections inherit from the socket it listens on."""

from __future__ import annotations

import asyncio
import socket

from msfkit.serve.app import bind


async def _nodelay_of_an_accepted_connection(listening: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted on `listening` by asyncio, as uvicorn accepts them."""
    nodelay = asyncio.get_running_loop().create_future()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodelay.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    async with await asyncio.start_server(connected, sock=listening):
        _, client = await asyncio.open_connection(*listening.getsockname())
        value = await asyncio.wait_for(nodelay, timeout=30)
        client.close()
    return value


def test_answers_go_out_at_once_without_waiting_for_the_delayed_ack():
    """asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections whose socket says
    IPPROTO_TCP; with it on, every keep-alive answer waited ~40 ms for the client's delayed ACK."""
    assert asyncio.run(_nodelay_of_an_accepted_connection(bind("127.0.0.1", 0))) == 1
