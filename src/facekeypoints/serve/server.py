"""Running the service under uvicorn: the port taken before anything else, the one answer
uvicorn writes itself (to a request it cannot parse) in the service's ``{"error": ...}`` shape, a
client that reads none of its answer for ``answer_timeout`` seconds dropped (its answer would stay
in memory), and a stop (Ctrl-C, SIGTERM) that ends within ``shutdown_grace`` seconds, said in one line.

Examples
--------
>>> sock = bind("127.0.0.1", 0)                       # doctest: +SKIP
>>> server(create_app()).run(sockets=[sock])          # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import re
import socket
import sys
from http import HTTPStatus

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["bind", "server", "SHUTDOWN_GRACE"]

SHUTDOWN_GRACE = 10  # seconds a stop waits for uploads and answers in progress: docker stop's own wait
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc malloc.h)
_log = logging.getLogger("uvicorn.error")  # uvicorn's: its format, its level


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


_CUT_SHORT = ("the upload was cut short: the client ended its side of the connection before the whole body came; "
              "send the whole body")


# h11's protocol always, not httptools' where it is installed (uvicorn[standard]): the overrides below follow
# h11's cycle (httptools parses pipelined requests ahead into a queue of its own), and are tested with it
_ABSOLUTE_FORM = re.compile(rb"(?i)https?://[^/?#]*(.*)")
_OTHER_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*:")  # ftp:, file:, ws: ... : no resource of this server


def _head_bytes(request: h11.Request) -> int:
    """The size of a request's line and headers, as they came."""
    return len(request.method) + len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers) + 14


class _JsonErrorProtocol(H11Protocol):
    """uvicorn's HTTP protocol, its plain-text 400 (a malformed request line, header or
    Content-Length such as -1, refused before the app sees it) answered as JSON instead; a client
    that takes none of its answer's bytes for ``answer_timeout`` seconds is dropped (uvicorn has no
    write timeout: the unsent answer would stay in memory for as long as the client stays connected);
    a client that half-closes still gets its answer; on a forced stop (``_Server``), an upload still
    being read is answered 503 before its connection is closed."""

    answer_timeout: float = 30.0
    shutdown_grace: float = SHUTDOWN_GRACE
    _reader_check: asyncio.TimerHandle | None = None
    _client_ended = False  # the client half-closed: answer what it sent, then close

    def pause_writing(self) -> None:  # the answer outgrew the transport's buffer: is the client reading it?
        super().pause_writing()
        self._watch_reader(self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._reader_check is not None:
            self._reader_check.cancel()

    def _watch_reader(self, unsent: int) -> None:
        def check() -> None:
            if not self.flow.write_paused:  # the buffer drained, or the connection is gone (uvicorn resumes it then)
                return
            now_unsent = self.transport.get_write_buffer_size()
            if now_unsent < unsent:  # a slow reader that keeps reading is served
                return self._watch_reader(now_unsent)
            _log.warning("dropped a client that read none of its answer for %g s ("
                         "serve --upload-timeout)", self.answer_timeout)
            self.transport.abort()  # close() would wait for the unsent bytes to be read
        if self._reader_check is not None:
            self._reader_check.cancel()
        self._reader_check = self.loop.call_later(self.answer_timeout, check)

    def eof_received(self) -> bool:
        """The client half-closed its side (nc -N, socat, some HTTP/1.0 clients): a complete request
        is still answered, and so is each complete request it sent after it (pipelined), then the
        connection is closed (``on_response_complete``); an upload cut short is answered 400."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:  # nothing asked, or answered: closed as before
            return False
        self._client_ended = True
        if cycle.more_body and not cycle.response_started:  # no more body bytes can come
            self._end_upload(400, _CUT_SHORT)
            return False
        return True  # the write side stays open for the answers

    def on_response_complete(self) -> None:
        """uvicorn's, which starts the next pipelined request the client sent; once a client that
        half-closed has no complete request left, the connection is closed (an upload cut short: 400)."""
        answered = self.cycle
        super().on_response_complete()
        if not self._client_ended or self.transport.is_closing():
            return
        if self.cycle is answered:  # nothing more was sent: that was the last answer
            self.transport.close()  # once the answer's bytes are out (a partial request left is dropped)
        elif self.cycle.more_body and not self.cycle.response_started:  # all it sent is read: the rest never comes
            self._end_upload(400, _CUT_SHORT)

    def stop_now(self, why: str) -> None:
        """A forced stop: an upload still being read is answered 503 (``why``) first, where the
        answer can still be sent; any other connection is dropped."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.more_body and not cycle.response_started:
            self._end_upload(503, f"{why}; send the upload again once it is back")
            if not self.transport.get_write_buffer_size():
                return self.transport.close()
        self.transport.abort()  # close() would wait for unsent bytes to be read

    def _end_upload(self, status: int, message: str) -> None:
        """Answers a request whose body is still being read with ``message`` and closes the connection;
        the app, waiting for the rest of the body, sees a disconnect and answers no more."""
        self._send_json_error(status, message)
        self.cycle.disconnected = True
        self.cycle.message_event.set()

    _refused: Exception | None = None  # what h11 refused the request for (uvicorn passes on no reason)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        parse = self.conn.next_event

        def next_event():  # h11's reason kept: a header over its size limit is not a malformed one
            try:
                event = parse()
            except h11.RemoteProtocolError as err:
                self._refused = err
                raise
            return self._checked(event) if isinstance(event, h11.Request) else event
        self.conn.next_event = next_event

    def _checked(self, request: h11.Request) -> h11.Request:
        """A request h11 parsed, held to what h11 checks only in part: the size of its head (h11 counts only
        what came before the headers ended, so a head sent in one piece passed at any size), and its target
        (absolute form taken as HTTP/1.1 servers must, RFC 9112 3.2.2; uvicorn would look for the path
        "/http://host/v1/keypoints"; other schemes refused)."""
        if _head_bytes(request) > self.conn._max_incomplete_event_size:  # noqa: SLF001
            self._refused = h11.RemoteProtocolError("request head too large", error_status_hint=431)
            raise self._refused
        if absolute := _ABSOLUTE_FORM.match(request.target):
            rest = absolute[1]  # "?a=1" of "http://host?a=1" is the root's query
            return h11.Request(method=request.method, headers=request.headers,
                               target=rest if rest.startswith(b"/") else b"/" + rest, http_version=request.http_version)
        if _OTHER_SCHEME.match(request.target):
            self._refused = h11.RemoteProtocolError("not an http(s) target", error_status_hint=400)
            self._refused.target = request.target
            raise self._refused
        return request

    def send_400_response(self, msg: str) -> None:
        if getattr(self._refused, "target", None) is not None:
            scheme = self._refused.target.split(b":", 1)[0].decode("ascii", "replace")[:20]
            return self._send_json_error(400, f"the request target is a {scheme}: URL; this server serves http(s) "
                                              "paths such as /v1/keypoints")
        if getattr(self._refused, "error_status_hint", 400) == 431:
            limit = self.conn._max_incomplete_event_size  # noqa: SLF001 (h11 keeps the limit it was given there)
            return self._send_json_error(431, f"the request's line and headers are too large: over {limit // 1024} KB "
                                              "(this server's limit); send shorter headers")
        self._send_json_error(400, "the request is not valid HTTP/1.1 (a malformed request line, header "
                                   "or Content-Length)")

    def _send_json_error(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, HTTPStatus(status).phrase.encode(), len(body), body))
        self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server, its stop said in one line: what it waits for (uvicorn's notice is INFO,
    below the level shown) and, when its ``shutdown_grace`` ends or a second Ctrl-C cuts it short,
    what it dropped, with no traceback."""

    async def shutdown(self, sockets=None) -> None:
        _log.addFilter(_QUIET_CANCEL)  # only once stopping: a cancelled request while serving is still logged
        busy = sum(_busy(connection) for connection in self.server_state.connections)
        grace = self.config.http.shutdown_grace
        if busy:
            print(f"stopping: waiting up to {grace:g} s for {busy} upload(s) or answer(s) in progress "
                  "(Ctrl-C again stops at once)", file=sys.stderr)
        # uvicorn waits for every connection to close: a slow upload or an unread answer must not keep it running
        timer = asyncio.get_running_loop().call_later(
            grace, self._stop_busy, f"stopped after {grace:g} s",
            f"the server is stopping and the upload did not finish within the {grace:g} s it waited")
        await super().shutdown(sockets)
        timer.cancel()
        # a second Ctrl-C: uvicorn stops waiting; its tasks, cancelled later, would each log a traceback
        if self._stop_busy("stopped at once", "the server is stopping at once"):
            await asyncio.sleep(0.1)  # their requests see the disconnect and end

    def _stop_busy(self, said: str, why: str) -> int:
        """Ends the connections still open, said in one line; how many."""
        left = list(self.server_state.connections)
        if left:
            print(f"{said}: {len(left)} connection(s) dropped", file=sys.stderr)
        for connection in left:
            connection.stop_now(why)
        return len(left)


def _busy(connection) -> bool:
    """Whether a connection has an upload or an answer in progress (an idle keep-alive one is closed at once)."""
    cycle = getattr(connection, "cycle", None)
    transport = getattr(connection, "transport", None)
    return bool(cycle is not None and not cycle.response_complete
                or transport is not None and transport.get_write_buffer_size())


class _QuietCancel(logging.Filter):
    """uvicorn logs a request cut off by a forced stop as "Exception in ASGI application" with a
    CancelledError traceback: the stop is said once instead (``_Server.shutdown``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


_QUIET_CANCEL = _QuietCancel()


def _map_large_buffers() -> None:
    """glibc's malloc raises its mmap threshold to the size of each large block freed (up to 32 MB),
    after which 20 MB upload buffers come from its heap, where freed ones stay and fragment: 16
    uploads of 20 MB at once, batch after batch, peaked at 490, then 780, then 890 MB. A fixed 8 MB
    threshold keeps each larger buffer a mapping of its own, given back when freed: 490, 505, 509 MB,
    and 140 MB between batches (model tensors and a 640x480 image stay under it: no slower)."""
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024)
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, Windows): its allocator's own ways
        pass


def server(app, *, answer_timeout: float = 30.0, shutdown_grace: float = SHUTDOWN_GRACE, **config) -> uvicorn.Server:
    """A uvicorn server for ``app``: warnings and errors logged only, malformed requests answered
    as JSON, a client that reads none of its answer for ``answer_timeout`` seconds dropped, a stop
    bounded by ``shutdown_grace`` seconds; ``config``: more ``uvicorn.Config`` keywords. Run it with
    ``.run(sockets=[bind(...)])``."""
    if sys.stdout is None:  # closed (serve >&-): uvicorn's log formatter would ask sys.stdout.isatty() for colours
        config.setdefault("use_colors", False)
    _map_large_buffers()
    protocol = type("_Protocol", (_JsonErrorProtocol,), {"answer_timeout": answer_timeout,
                                                          "shutdown_grace": shutdown_grace})
    # lifespan off: the app has no start-up or shutdown handlers, and a forced stop would log the
    # cancelled lifespan task's traceback
    return _Server(uvicorn.Config(app, log_level="warning", http=protocol, lifespan="off", **config))
