"""One HTTP/2 request over TLS with the ``h2`` library, headers sent as given.

Far from a full client: it sends one request whose pseudo-headers and
headers are whatever the test says (an ``:authority`` no proper client would
send included), and reads the one answer, framed by ``h2``.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from tests.harness.raw_http import Answer
from tests.harness.servers import UNIT


def h2_answer(port: int, headers: list[tuple[bytes, bytes]], cafile: Path) -> Answer:
    """Send ``headers`` as one HTTP/2 request without a body; return the answer."""
    import h2.config
    import h2.connection
    import h2.events

    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2"])
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        # Sent as written: what a hostile client sends is the point.
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    connection = h2.connection.H2Connection(config)
    status, fields, body = 0, {}, b""
    with (
        socket.create_connection(("127.0.0.1", port), 10 * UNIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.selected_alpn_protocol() == "h2"
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(stream, headers, end_stream=True)
        sock.sendall(connection.data_to_send())
        ended = False
        while not ended:
            data = sock.recv(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    fields = {
                        name.decode("latin-1"): value.decode("latin-1")
                        for name, value in event.headers
                    }
                    status = int(fields.pop(":status"))
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
                elif isinstance(
                    event, (h2.events.StreamReset, h2.events.ConnectionTerminated)
                ):
                    raise AssertionError(f"the server ended the request: {event}")
            sock.sendall(connection.data_to_send())
    return Answer(status, fields, body)
