"""Round 16 of the bad-input audit: the service.

An upload's --max-uploads slot lasts until its answer is sent, and a client that reads none of its
answer is dropped (its answer no longer waits in memory for ever); --upload-timeout and --max-uploads
have upper bounds; a multipart body that does not match its boundary is said to; a stop with an upload
or an answer in progress ends within a bounded time, in one line.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from facekeypoints.cli import build_parser
from facekeypoints.serve.app import create_app
from fakes import running


@pytest.fixture(scope="module")
def small_app():
    return create_app({"kaggle15": "kaggle15"}, workers=1, max_uploads=1, upload_timeout=60)


def _request(body: bytes, query: bytes = b"") -> bytes:
    return (b"POST /v1/keypoints%s HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
            % (query, len(body))) + body


def _status(port: int, body: bytes) -> int:
    sock = socket.create_connection(("127.0.0.1", port))
    with sock:
        with contextlib.suppress(OSError):  # a 503 is answered before the body is read
            sock.sendall(_request(body))
        sock.settimeout(10)
        return int(sock.recv(12).split()[1])


# P1: an unread answer holds its upload slot, and its client is dropped after the timeout

def test_an_unread_answer_holds_its_slot_until_its_client_is_dropped(small_app):
    noise = np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), dtype=np.uint8)
    # its drawing is about 8 MB: more than the socket buffers hold
    photo = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    small = cv2.imencode(".jpg", noise[:64, :64])[1].tobytes()
    with running(small_app, details=True, answer_timeout=2) as (port, _, _):
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect(("127.0.0.1", port))
        reader.sendall(_request(photo, b"?draw=true"))
        reader.settimeout(15)
        assert reader.recv(12, socket.MSG_PEEK).startswith(b"HTTP/1.1 200")  # the answer has started
        assert _status(port, small) == 503  # max_uploads=1: the unread answer still holds its slot
        start = time.monotonic()
        received = 0
        with contextlib.suppress(ConnectionResetError):
            time.sleep(3)  # reads nothing for longer than answer_timeout
            while chunk := reader.recv(65536):
                received += len(chunk)
        reader.close()
        assert received < len(photo) and time.monotonic() - start < 10  # dropped before its whole answer
        assert _status(port, small) == 200  # and its slot given back


# P2: --upload-timeout and --max-uploads have upper bounds

@pytest.mark.parametrize("option, value, words", [("--upload-timeout", "1" + "0" * 400, "must be 1..3600"),
                                                  ("--upload-timeout", "3601", "must be 1..3600, got 3601"),
                                                  ("--max-uploads", "10001", "must be 1..10000")])
def test_serve_bounds_are_refused_in_one_line_when_too_large(option, value, words, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", option, value])
    err = capsys.readouterr().err
    assert words in err and len(err.splitlines()[-1]) < 200 and "Traceback" not in err


def test_create_app_refuses_an_unbounded_upload_timeout():
    with pytest.raises(ValueError, match="at most 3600"):
        create_app({"kaggle15": "kaggle15"}, upload_timeout=10 ** 400)


# P3: a multipart body that does not match the Content-Type's boundary is said to

@pytest.fixture(scope="module")
def client(small_app) -> TestClient:
    return TestClient(small_app)


def _multipart(newline: bytes = b"\r\n") -> bytes:
    image = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    return newline.join([b"--XyZ", b'Content-Disposition: form-data; name="file"; filename="a.jpg"',
                         b"Content-Type: image/jpeg", b"", image, b"--XyZ--", b""])


@pytest.mark.parametrize("parameters, words", [
    ("boundary=AAA", "does not contain the boundary 'AAA' that the Content-Type header declares (its first line is "
                     "'--XyZ')"),
    ("boundary=", "boundary parameter is empty"),
    ("boundary='XyZ'", "does not contain the boundary \"'XyZ'\""),
    ("boundary=XyZ; boundary=A", "gives boundary= 2 times and the last one is used")])
def test_a_boundary_the_body_does_not_use_is_named(client, parameters, words):
    answer = client.post("/v1/keypoints", content=_multipart(),
                         headers={"content-type": f"multipart/form-data; {parameters}"})
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text


def test_a_multipart_body_with_bare_lf_line_ends_is_said_to_have_them(client):
    answer = client.post("/v1/keypoints", content=_multipart(b"\n"),
                         headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert answer.status_code == 400 and "bare LF" in answer.json()["error"], answer.text
    good = client.post("/v1/keypoints", content=_multipart(),
                       headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert good.status_code == 200, good.text


# P4: a stop ends within a bounded time, said in one line, without tracebacks

def test_a_stop_with_a_stalled_upload_ends_within_the_grace(small_app, capsys):
    with running(small_app, details=True, shutdown_grace=1) as (port, instance, thread):
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(_request(b"\0" * 1000)[:-900])  # upload_timeout=60: it would hold the server a minute
        time.sleep(0.3)
        start = time.monotonic()
        instance.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive() and time.monotonic() - start < 5
        stalled.close()
    assert "stopping: waiting up to 1 s for 1 upload(s)" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once_in_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "import sys; from facekeypoints.cli import main; sys.exit(main())",
               "serve", "--port", str(port), "--model", "kaggle15", "--workers", "1"]
    srv = subprocess.Popen(command, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as health:
                health.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if health.recv(12).startswith(b"HTTP/1.1 200"):
                    break
            time.sleep(0.1)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(_request(b"\0" * 1000)[:-900])
        time.sleep(0.3)
        srv.send_signal(signal.SIGINT)
        time.sleep(0.5)
        srv.send_signal(signal.SIGINT)
        err = srv.communicate(timeout=10)[1].decode()
        slow.close()
    finally:
        srv.kill()
    assert "stopping: waiting up to" in err and "stopped at once: 1 connection(s) dropped" in err, err
    assert "Traceback" not in err and len(err.splitlines()) <= 4, err
