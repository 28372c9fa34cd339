"""Round 17 of the bad-input audit: the service.

A client that half-closes its side after its request is answered (an upload cut short gets the 400);
an upload still being read when a stop's grace ends gets a 503 and the drop is said in one line;
upload memory stays about one copy of the body; broken multipart part headers are each named.
"""
from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from matplotlib import cbook

from facekeypoints.serve.app import create_app
from fakes import running

PHOTO = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
URL = "/v1/keypoints"


@pytest.fixture(scope="module")
def app():
    return create_app({"kaggle15": "kaggle15"}, workers=1, upload_timeout=60)


def _request(body: bytes, length: int | None = None, version: bytes = b"1.1") -> bytes:
    return (b"POST /v1/keypoints HTTP/%s\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
            % (version, len(body) if length is None else length)) + body


def _answer(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the one answer on ``sock``, read until the server closes it."""
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head, "no answer at all"
    return int(head.split()[1]), json.loads(body)


# 2. a client that half-closes (nc -N, socat) after its request still gets its answer

@pytest.mark.parametrize("request_bytes, status, words", [
    (_request(PHOTO), 200, "faces"),
    (_request(PHOTO, version=b"1.0"), 200, "faces"),
    (_request(PHOTO, length=len(PHOTO) + 100), 400, "the upload was cut short"),
    (b"POST /v1/keypoints HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"%x\r\n" % len(PHOTO) + PHOTO + b"\r\n", 400, "the upload was cut short"),
], ids=["complete", "http1.0", "content-length-short", "chunked-short"])
def test_a_half_closed_request_is_answered(app, request_bytes, status, words):
    with running(app) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        got_status, body = _answer(sock)
    assert got_status == status and words in (body if status == 200 else body["error"]), body


# 4. a stop: an upload still being read when the grace ends is answered 503, and the drop is said

def test_an_upload_unfinished_at_the_end_of_the_grace_gets_a_503(app, capsys):
    with running(app, details=True, shutdown_grace=0.5) as (port, instance, thread):
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(_request(PHOTO)[:1000])
        time.sleep(0.3)
        instance.should_exit = True
        thread.join(timeout=10)
        status, body = _answer(stalled)
        stalled.close()
    assert status == 503 and "the server is stopping" in body["error"], body
    err = capsys.readouterr().err
    assert "stopped after 0.5 s: 1 connection(s) dropped" in err, err


# 5. a broken part header block is named with its part and its cause

def _multipart(head: bytes, data: bytes = PHOTO) -> tuple[bytes, dict]:
    body = b"--BND\r\n" + head + b"\r\n\r\n" + data + b"\r\n--BND--\r\n"
    return body, {"content-type": "multipart/form-data; boundary=BND"}


FILE_PART = b'Content-Disposition: form-data; name="file"; filename="a.jpg"'


@pytest.mark.parametrize("head, data, words", [
    (FILE_PART + b"\r\nX-Pad: " + b"a" * 100_000, PHOTO, "part 1 ('file') has a header line of over 4224 bytes"),
    (FILE_PART + b"".join(b"\r\nX-%d: a" % i for i in range(10_000)), PHOTO, "part 1 ('file') has over"),
    (FILE_PART + b"".join(b"\r\nX-%d: a" % i for i in range(9)), PHOTO, "part 1 ('file') has 10 header lines; at most 8"),
    (b'Content-Disposition: form-data;\r\n name="file"; filename="a.jpg"', PHOTO, "header line folding is not supported"),
    (FILE_PART + b"\r\nContent-Transfer-Encoding: base64", base64.b64encode(PHOTO),
     "part 1 ('file') has Content-Transfer-Encoding 'base64', which is not decoded (RFC 7578 section 4.7)"),
], ids=["long-line", "10000-lines", "10-lines", "folded", "base64"])
def test_a_broken_part_header_block_is_named(app, head, data, words):
    body, headers = _multipart(head, data)
    answer = TestClient(app).post(URL, content=body, headers=headers)
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text


def test_plain_part_encodings_and_a_part_without_headers_still_read(app):
    body, headers = _multipart(FILE_PART + b"\r\nContent-Transfer-Encoding: binary\r\nContent-Type: image/jpeg")
    answer = TestClient(app).post(URL, content=body, headers=headers)
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1, answer.text
    body = b"preamble\r\n--BND\r\n\r\nnot a form part\r\n" + body  # a preamble, then a part with no headers
    answer = TestClient(app).post(URL, content=body, headers=headers)
    assert answer.status_code == 400 and "must be provided" in answer.json()["error"], answer.text


# 1. an upload is held about once in memory, not joined, stripped or read into more copies

@pytest.mark.parametrize("kind", ["raw", "multipart"])
def test_an_upload_is_held_about_once(app, kind):
    import tracemalloc

    noise = b"\xff\xd8" + bytes(range(256)) * (8 * 1024 * 1024 // 256)  # 8 MB: read, then refused as an image
    body, headers = _multipart(FILE_PART, noise) if kind == "multipart" else (noise, {"content-type": "image/jpeg"})
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
    request = b"POST /v1/keypoints HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (head, len(body)) + body
    with running(app) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        tracemalloc.start()  # the server's allocations only: the request was made before
        try:
            sock.sendall(request)  # read by the server in many pieces
            status, answer = _answer(sock)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert status == 400 and "decode" in answer["error"], answer
    # once, plus the form parser's few 1 MB pieces: not joined, stripped or read into more copies
    assert peak < 1.75 * len(body), f"peak {peak / 2**20:.1f} MB for a {len(body) / 2**20:.1f} MB upload"


def test_part_headers_are_looked_at_only_up_to_the_parsers_part_limit():
    from facekeypoints.serve.app import MAX_FILE_PARTS, MAX_TEXT_PARTS, _check_part_heads

    folded = b"--X\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nv\r\n"
    with pytest.raises(Exception, match="continues the one before"):
        _check_part_heads(folded + b"--X--\r\n", b"--X", 0)
    # beyond the limit the parser refuses the body itself: a body of millions of empty parts is not walked
    many = b"--X\r\n\r\n\r\n" * (MAX_FILE_PARTS + MAX_TEXT_PARTS + 1) + folded + b"--X--\r\n"
    _check_part_heads(many, b"--X", 0)
