"""The keypoint service (FastAPI): ``POST /v1/keypoints``, ``GET /v1/models``, ``GET /healthz``,
the web page at ``/`` and the OpenAPI description at ``/openapi.json`` (browsable at ``/docs``).

What a request meets, in order, each failure a 4xx with a one-line ``{"error": ...}`` (no stack
trace and no server path ever reaches a client):

- an unknown model or detector: 404 naming the known ones;
- a body over ``max_body`` bytes (declared or streamed): 413; a multipart upload without a
  Content-Length: 411; a content type that is neither an image nor multipart: 415;
- an image over ``max_pixels``, judged from its header before any pixel is decoded: 413;
  bytes that do not decode: 400.

Work runs off the event loop in a pool of ``workers`` threads, each with its own detectors (OpenCV's
cascade is not shared between threads); requests beyond that wait in the pool's queue, so a burst
is served late rather than refused, and memory stays bounded by ``workers`` images at a time.

Examples
--------
>>> from fastapi.testclient import TestClient                         # doctest: +SKIP
>>> client = TestClient(create_app())                                  # doctest: +SKIP
>>> client.post("/v1/keypoints?model=ibug68", content=jpeg_bytes,      # doctest: +SKIP
...             headers={"content-type": "image/jpeg"}).json()["faces"][0]["keypoints"]["jaw_00"]
{'x': 176.1, 'y': 210.4}
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import cv2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.images import OVER_LIMIT, decode_image
from facekeypoints.infer.detectors import DETECTORS
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.models.weights import SHIPPED

__all__ = ["create_app", "MAX_BODY", "MAX_PIXELS"]

MAX_BODY = 20 * 1024 * 1024  # bytes: a 48 MP phone JPEG fits
MAX_PIXELS = 50_000_000  # per image; with `workers` decoded at once, memory stays bounded


class _ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Models:
    """``KeypointDetector`` per (model, detector) and per worker thread, made on first use."""

    def __init__(self, models: dict[str, str | Path]):
        self.paths = dict(models)
        self._local = threading.local()

    def get(self, model: str, detector: str) -> KeypointDetector:
        cache = self._local.__dict__.setdefault("detectors", {})
        if (model, detector) not in cache:
            cache[model, detector] = KeypointDetector(self.paths[model], detector=detector, threads=1)
        return cache[model, detector]


def create_app(models: dict[str, str | Path] | None = None, *, detector: str = "haar", workers: int = 2,
               max_body: int = MAX_BODY, max_pixels: int | None = MAX_PIXELS) -> FastAPI:
    """The service. ``models``: name -> checkpoint or ONNX file (default: the shipped kaggle15 and
    ibug68); ``detector``: the default face detector (``DETECTORS``); ``workers``: threads that run
    models (requests beyond them queue)."""
    models = dict(models or {name: name for name in SHIPPED})
    detector = detector.lower()
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; known: {sorted(DETECTORS)}")
    if workers < 1 or max_body < 1:
        raise ValueError(f"workers and max_body must be >= 1, got {workers} and {max_body}")
    loaded, cards = _Models(models), {}
    for name in models:  # at start-up, not on a client's request: a bad file or detector stops the server here
        try:
            cards[name] = loaded.get(name, detector).card.summary()
        except (ValueError, FileNotFoundError, OSError) as err:
            raise ValueError(f"model {name!r}: {err}") from None
    page_html = resources.files("facekeypoints").joinpath("serve", "static", "index.html").read_text()
    default_model = "kaggle15" if "kaggle15" in models else next(iter(models))
    app = FastAPI(title="facekeypoints", summary="Faces and their keypoints in a photo.",
                  version=_version())
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keypoints")
    default_detector = detector  # the handler's query parameter takes the name

    @app.exception_handler(_ClientError)
    async def client_error(request: Request, err: _ClientError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, err: RequestValidationError) -> JSONResponse:  # one error shape
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', 'invalid')}"
                             for e in err.errors())
        return JSONResponse({"error": _short(problems or "invalid request")}, status_code=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:  # no trace, no paths
        return JSONResponse({"error": f"internal error ({type(err).__name__})"}, status_code=500)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"models": sorted(models), "detectors": sorted(DETECTORS), "default_detector": detector,
                "max_body_bytes": max_body, "max_pixels": max_pixels}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return page_html

    @app.post("/v1/keypoints", responses={400: {}, 404: {}, 411: {}, 413: {}, 415: {}})
    async def keypoints(request: Request, model: str | None = None, detector: str | None = None,
                        draw: bool = False) -> Response:
        """An image (multipart field ``file``, or the raw body with an image content type) -> the
        same JSON as ``facekeypoints predict`` (boxes, scores, named keypoints, timings) plus the
        model card's summary; with ``draw=true``, a JPEG of the keypoints drawn on the image."""
        start = time.perf_counter()
        model = model or default_model
        if model not in models:
            raise _ClientError(404, f"unknown model {_short(model)}; known: {sorted(models)}")
        chosen = (detector or default_detector).lower()
        if chosen not in DETECTORS:
            raise _ClientError(404, f"unknown detector {_short(chosen)}; known: {sorted(DETECTORS)}")
        data = await _upload(request, max_body)
        received = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(pool, _predict, loaded, model, chosen, data, max_pixels, draw)
        result, drawing = await work
        if drawing is not None:
            return Response(drawing, media_type="image/jpeg")
        body = result.to_dict()
        body.update(source="upload", model=cards[model], detector=chosen)
        body["timings"] = {**body.get("timings", {}), "upload": round((received - start) * 1000, 3),
                           "total": round((time.perf_counter() - start) * 1000, 3)}
        return JSONResponse(body)

    return app


def _predict(loaded: _Models, model: str, detector: str, data: bytes, max_pixels: int | None, draw: bool):
    """In a worker thread: decode (the header's size checked first), detect, predict, maybe draw."""
    try:
        rgb = decode_image(data, max_pixels=max_pixels, name="upload")
    except DataFormatError as err:
        raise _ClientError(413 if OVER_LIMIT in err.reason else 400, str(err)) from None
    try:
        pipeline = loaded.get(model, detector)
    except (ValueError, FileNotFoundError) as err:  # a detector whose extra or weights are not installed
        raise _ClientError(404, str(err).split(": ", 1)[-1]) from None
    result = pipeline(rgb)
    if not draw:
        return result, None
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(result.draw(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return result, jpeg.tobytes()


async def _upload(request: Request, max_body: int) -> bytes:
    """The image bytes of a request, refused (413/411/415/400) before reading more than ``max_body``."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise _ClientError(413, f"the body is over the limit of {max_body} bytes" if declared.isdigit()
                           else "the Content-Length header is not a number")
    if kind == "multipart/form-data":
        if declared is None:
            raise _ClientError(411, "a multipart upload needs a Content-Length header")
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as err:  # Starlette's parser: a missing boundary, too many files or fields, a cut body
            detail = getattr(err, "detail", None) or str(err) or type(err).__name__
            raise _ClientError(400, f"the multipart body cannot be read: {_short(str(detail))}") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise _ClientError(400, "the multipart body has no file field named 'file'")
        return await upload.read()
    if not kind.startswith("image/") and kind != "application/octet-stream":
        raise _ClientError(415, f"send an image (content type image/..., or multipart with a 'file' field), "
                                f"not {kind or 'a body without a content type'!r}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _ClientError(413, f"the body is over the limit of {max_body} bytes")
        chunks.append(chunk)
    if not size:
        raise _ClientError(400, "the body is empty; send the image's bytes")
    return b"".join(chunks)


def _short(text: str, limit: int = 80) -> str:
    """``text`` quoted, cut to ``limit`` characters: a client's long value is not echoed back whole."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _version() -> str:
    from importlib.metadata import version

    return version("facekeypoints")
