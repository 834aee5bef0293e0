"""uvicorn's HTTP/1.1 protocol (h11), speaking JSON where it refuses a request itself.

Bytes that are not HTTP, or a body whose chunked framing is broken, never reach the application: uvicorn's
parser answers them with a plain-text 400. This subclass answers with the application's JSON error instead
(`{"error", "code": "bad-http", "status": 400}`), and drops whatever the application later tries to send for
that request (uvicorn's own class logs a traceback then). Imported by `run_server` only (uvicorn is optional).
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class JsonH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            started = cycle.response_started
            cycle.disconnected = True  # the application's reads end, its writes are dropped
            cycle.message_event.set()
            if started:  # a response is already on the wire: all that is left is to close
                self.transport.close()
                return
        body = json.dumps({"error": f"malformed HTTP request ({msg.rstrip('.')}); send well-formed HTTP/1.1",
                           "code": "bad-http", "status": 400}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
