"""Running the service under uvicorn: the port taken before anything else, and the one answer
uvicorn writes itself (to a request it cannot parse) in the service's ``{"error": ...}`` shape.

Examples
--------
>>> sock = bind("127.0.0.1", 0)                       # doctest: +SKIP
>>> server(create_app()).run(sockets=[sock])          # doctest: +SKIP
"""
from __future__ import annotations

import json
import socket
import sys

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

__all__ = ["bind", "server"]


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one); ``OSError`` when it cannot be had
    (in use, not an address of this machine, a privileged port). Listening at once keeps a second
    server from taking the port while the models load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn's own Config.bind_socket
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError:
        sock.close()
        raise
    return sock


class _JsonErrorProtocol(AutoHTTPProtocol):  # h11's, or httptools' when installed
    """uvicorn's HTTP protocol, its plain-text 400 (a malformed request line, header or
    Content-Length such as -1, refused before the app sees it) answered as JSON instead."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": "the request is not valid HTTP/1.1 (a malformed request line, header "
                                    "or Content-Length)"}).encode()
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def server(app, **config) -> uvicorn.Server:
    """A uvicorn server for ``app``: warnings and errors logged only, malformed requests answered
    as JSON; ``config``: more ``uvicorn.Config`` keywords. Run it with ``.run(sockets=[bind(...)])``."""
    if sys.stdout is None:  # closed (serve >&-): uvicorn's log formatter would ask sys.stdout.isatty() for colours
        config.setdefault("use_colors", False)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", http=_JsonErrorProtocol, **config))
