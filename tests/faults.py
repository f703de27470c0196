"""A TCP proxy a test puts between a process and a shared server, to inject faults.

The shared PostgreSQL, Redis and RabbitMQ are never stopped by tests; a process under
test reaches them through a :class:`FaultProxy` instead, and the test makes the proxy

- ``refuse()``: new connections are refused (nothing listens) and open ones are reset,
  as when the server is down;
- ``freeze()``: connections stay open but no byte moves either way, and new ones are
  accepted but hang, as when the server or the network stops answering;
- ``reset()``: every open connection is reset once, as a failover does;
- ``heal()``: back to forwarding.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator

_LINGER_RESET = struct.pack("ii", 1, 0)


def _hard_close(sock: socket.socket) -> None:
    """Close with an RST, as a crashed peer would, rather than an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = False
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    # -- faults ---------------------------------------------------------------

    def refuse(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.reset()

    def freeze(self) -> None:
        self._flowing.clear()

    def reset(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server in pairs:
            _hard_close(client)
            _hard_close(server)

    def heal(self) -> None:
        self._flowing.set()
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self._stopped = True
        self.refuse()
        self._flowing.set()

    @contextlib.contextmanager
    def refused(self) -> Iterator[None]:
        self.refuse()
        try:
            yield
        finally:
            self.heal()

    # -- plumbing -------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by refuse()
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        # A frozen proxy accepts, then holds the connection without reaching the server.
        self._flowing.wait()
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            _hard_close(client)
            return
        server.settimeout(None)
        with self._lock:
            self._pairs.append((client, server))
        threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        try:
            while True:
                if not self._flowing.is_set():
                    self._flowing.wait()
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    if not self._flowing.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                if (client, server) in self._pairs:
                    self._pairs.remove((client, server))
            _hard_close(client)
            _hard_close(server)
