"""A TCP proxy for fault tests: forwards both ways, and on demand holds back the server's answers.

``hold_responses()`` makes the proxy keep forwarding requests to the server but stop passing the
server's bytes back, so a client sits in the middle of a request whose effect (a committed batch)
already happened. ``requests_while_holding`` is set once request bytes passed while holding, which
is the moment a test kills the client. ``pass_responses()`` goes back to normal.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from devstack.ports import LOCALHOST

_CHUNK = 65536


class HoldingProxy:
    def __init__(self, target_port: int, *, listen_port: int = 0) -> None:
        self._target = (LOCALHOST, target_port)
        self._server = socket.create_server((LOCALHOST, listen_port))
        self.port: int = self._server.getsockname()[1]
        self._holding = threading.Event()
        self.requests_while_holding = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def hold_responses(self) -> None:
        self.requests_while_holding.clear()
        self._holding.set()

    def pass_responses(self) -> None:
        self._holding.clear()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5.0)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, is_request: bool) -> None:
        held = bytearray()
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                if is_request:
                    if self._holding.is_set():
                        self.requests_while_holding.set()
                    sink.sendall(data)
                elif self._holding.is_set():
                    held += data  # the client never sees this answer while holding
                else:
                    if held:
                        sink.sendall(bytes(held))
                        held.clear()
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
