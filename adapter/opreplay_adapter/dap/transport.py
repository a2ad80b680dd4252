"""How the adapter reaches its client: stdio (what VS Code spawns) or TCP on 127.0.0.1.

stdio: fd 0 and fd 1 are the protocol channel, so the adapter takes private copies of them and
points fd 1 at stderr and fd 0 at /dev/null. Whatever a library prints (even from C) then lands on
stderr instead of corrupting the channel, and nothing else can consume protocol bytes. Both copies
are unbuffered raw files (which can also be polled), so a watcher thread holds no buffer lock when
the process exits while it is blocked reading.

TCP: one client at a time (a debug session owns the adapter's state); each accepted socket gets
TCP_NODELAY, because DAP is many small request/response round trips that Nagle's algorithm would
delay by tens of milliseconds each. A connection that ends, even on a protocol error, does not
stop the server: the next client is accepted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from typing import NoReturn

from opreplay_adapter.dap.dispatch import Ending
from opreplay_adapter.dap.protocol import (
    MessageLog,
    MessageReader,
    MessageWriter,
    ReadableStream,
    WritableStream,
)
from opreplay_adapter.dap.session import DebugSession

_DRAIN_CHUNK = 64 * 1024


def run_connection(
    in_stream: ReadableStream,
    out_stream: WritableStream,
    *,
    log: MessageLog | None = None,
    session_class: type[DebugSession] = DebugSession,
    unblock: Callable[[], None] | None = None,
) -> Ending:
    """Serve one client over a pair of binary streams until the connection ends."""
    session = session_class(MessageWriter(out_stream, log=log), log=log)
    return session.serve(MessageReader(in_stream, log=log), unblock=unblock)


def serve_stdio(*, log: MessageLog | None = None) -> Ending:
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    # Left open on purpose: a watcher thread may still be blocked on in_fd when this returns.
    stdin = open(in_fd, "rb", buffering=0)  # noqa: SIM115
    stdout = open(out_fd, "wb", buffering=0)  # noqa: SIM115
    return run_connection(stdin, stdout, log=log)


def accept_client(listener: socket.socket) -> socket.socket:
    client, _ = listener.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def serve_socket(client: socket.socket, *, log: MessageLog | None = None) -> Ending:
    def unblock() -> None:
        with contextlib.suppress(OSError):  # the peer has already gone
            client.shutdown(socket.SHUT_WR)  # our FIN: a well-behaved client now closes its side

    with client.makefile("rb", buffering=0) as reader, client.makefile("wb", buffering=0) as writer:
        ending = run_connection(reader, writer, log=log, unblock=unblock)
    _drain(client)
    return ending


def _drain(client: socket.socket, *, seconds: float = 1.0) -> None:
    """Read what the client still sends until it closes (within `seconds`).

    Closing a socket with unread input makes the kernel send RST instead of FIN, and an RST can
    destroy the responses still on their way to the client (the error that explains the close).
    """
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while (remaining := deadline - time.monotonic()) > 0:
            client.settimeout(remaining)
            if not client.recv(_DRAIN_CHUNK):
                return


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: any free port); OSError if it cannot bind."""
    return socket.create_server(("127.0.0.1", port), backlog=1)


def serve_tcp(
    listener: socket.socket, *, log: MessageLog | None = None, on_ended: Callable[[Ending], None]
) -> NoReturn:
    """Serve the clients of `listener` one after the other, forever."""
    while True:
        with accept_client(listener) as client:
            on_ended(serve_socket(client, log=log))
