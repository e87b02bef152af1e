"""The TLS context every MQTT client of the project uses (sensor subscriber, MQTT uplink, central's worker and sink).

The broker's chain is verified against ``ca_file`` (or the system store) and its host name checked;
``cert_file``/``key_file`` add a client certificate. paho 2.x drops the socket of a failed handshake
(wrong CA, wrong host name) without closing it: over days of retries against a misconfigured broker
that is one leaked descriptor per try until the garbage collector runs, so the socket closes itself.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def client_tls_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context for ``Client.tls_set_context``."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.sslsocket_class = _ClosingSSLSocket
    context.check_hostname = check_hostname
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return context
