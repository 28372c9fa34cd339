"""The keypoint service (FastAPI): ``POST /v1/keypoints``, ``GET /v1/models``, ``GET /healthz``,
the web page at ``/`` and the OpenAPI description at ``/openapi.json``. There is no ``/docs``:
Swagger UI and ReDoc load their scripts from a CDN, so they would be blank offline, and no
installed package ships them. GET routes answer HEAD too (``curl -I``, uptime checks).

Every error answer, FastAPI's and Starlette's own (404, 405, 422) included, is a one-line
``{"error": ...}`` (no stack trace and no server path ever reaches a client). What a request to
``/v1/keypoints`` meets, in order:

- an unknown or repeated query option: 422 naming it and the known ones (a multipart upload's text fields
  model, detector, draw are options too, checked once the body is read; one that disagrees with the query: 422);
- an unknown model or detector: 404 naming the known ones; a detector this install cannot run (dlib
  without its extra): 501, and /v1/models lists only those it can;
- a body over ``max_body`` bytes (declared or streamed): 413; a body with neither a Content-Length
  nor chunked Transfer-Encoding: 411; a content type that is neither an image nor
  multipart, or a Content-Encoding (gzip): 415; a multipart field ``file`` given twice: 400;
- an image over ``max_pixels``, judged from its header before any pixel is decoded: 413;
  bytes that do not decode: 400, worded for an HTTP client (the image readers' advice is for the CLI);
- a multipart body cut short: 400; a client gone mid-upload: a 400 nobody reads, and no traceback;
  an upload that sends nothing for ``upload_timeout`` seconds: 408, and the connection is closed;
- more than ``max_uploads`` uploads at once (being read, queued, running or answered): 503 at once, before
  the body is read (GET routes are not counted: /healthz answers while the service is busy);
- a multipart body without the Content-Type's boundary, or with bare LF line ends: 400 saying so; a part
  with a header line over 4224 bytes, more than 8 header lines, a folded header line or a
  Content-Transfer-Encoding other than 7bit, 8bit or binary: 400 naming the part and the cause.

Work runs off the event loop in a pool of ``workers`` threads, each with its own detectors (OpenCV's
cascade is not shared between threads); requests beyond that wait in the pool's queue, so a burst
of up to ``max_uploads`` is served late rather than refused. Each upload's body is held whole in memory until its
answer is sent (a client that reads none of it for ``upload_timeout`` seconds is dropped, serve/server.py),
so memory stays bounded by ``max_uploads`` bodies of at most ``max_body`` bytes plus ``workers`` decoded
images: a body is held once (a multipart one's file part goes to a temporary file as it is parsed, and is
read back once the body is let go).

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
import difflib
import io
import logging
import math
import numbers
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from python_multipart.multipart import DEFAULT_MAX_HEADER_COUNT as MAX_PART_HEADERS
from python_multipart.multipart import DEFAULT_MAX_HEADER_SIZE as MAX_PART_HEADER_LINE
from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.formats.checks import check_count
from facekeypoints.data.images import OVER_LIMIT, decode_image
from facekeypoints.infer.detectors import DETECTORS, unsearched_note
from facekeypoints.infer.predictor import KeypointDetector
from facekeypoints.infer.results import finite_json
from facekeypoints.models.weights import SHIPPED

__all__ = ["create_app", "MAX_BODY", "MAX_PIXELS"]

MAX_BODY = 20 * 1024 * 1024  # bytes: a 48 MP phone JPEG fits
MAX_PIXELS = 50_000_000  # per image; with `workers` decoded at once, memory stays bounded
MAX_UPLOADS = 16  # POSTs in the app at once (read, queued or run): 16 x 20 MB bodies, not one per client
UPLOAD_TIMEOUT = 30.0  # seconds an upload may send nothing: a stalled client does not hold its slot forever
MAX_UPLOAD_TIMEOUT = 3600  # an hour: longer is no bound at all (and past ~1e308 asyncio's timer overflows)
MAX_UPLOADS_LIMIT = 10_000  # each one a connection, a file descriptor and up to max_body bytes
FORM_PIECE = 1024 * 1024  # bytes of a multipart body handed to the form parser at once: its spool size
SEND_CHUNK = 64 * 1024  # bytes of an answer handed to uvicorn at once: asyncio's write buffer high-water mark
OPTIONS = ("model", "detector", "draw")  # the query options of POST /v1/keypoints, as its signature names them
# a multipart body's parts the form parser takes: the file, an option sent as a file and one more (to
# be named), and the options as text fields with room for unknown ones (each named, a 422)
MAX_FILE_PARTS, MAX_TEXT_PARTS = len(OPTIONS) + 2, 10
_BOOLS = {**dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
          **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False)}  # what pydantic takes for the query's draw
MULTI_FRAME_NOTE = "only the first is used"  # how decode_image's note on pages or frames left unused ends
JPEG_MAX_SIDE = 65500  # libjpeg's limit: OpenCV logs a multi-line error past it, so such a drawing goes straight to PNG
# python-multipart logs "Expected boundary character ..." for every malformed body, which is already a 400 answer
logging.getLogger("python_multipart").setLevel(logging.ERROR)
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}


class _ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _UploadLimit:
    """ASGI middleware: at most ``limit`` requests with a body (POST) in the app at once; one beyond
    them is answered 503 before its body is read, and its connection closed (uvicorn's own
    ``limit_concurrency`` answers in plain text and counts idle keep-alive connections too).
    An upload counts until its answer is sent: the answer goes in ``SEND_CHUNK`` pieces, each sent
    once the client has taken the ones before (uvicorn would buffer a whole 8 MB drawing at once and
    end the request, the slot given back while the drawing waits in memory for a client that may
    never read it; serve/server.py drops such a client)."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            busy = JSONResponse({"error": f"the server is busy: {self.limit} uploads are in progress (serve "
                                          "--max-uploads); try again in a moment"},
                                status_code=503, headers={"Retry-After": "1", "Connection": "close"})
            return await busy(scope, receive, send)
        self.active += 1  # the event loop's thread only: no lock

        async def send_in_pieces(message: dict) -> None:
            body = message.get("body", b"")
            if message["type"] != "http.response.body" or len(body) <= SEND_CHUNK:
                return await send(message)
            for start in range(0, len(body), SEND_CHUNK):  # uvicorn waits for the client before each piece
                last = start + SEND_CHUNK >= len(body)
                await send({**message, "body": body[start:start + SEND_CHUNK],
                            "more_body": message.get("more_body", False) if last else True})
        try:
            await self.app(scope, receive, send_in_pieces)
        finally:
            self.active -= 1


class _Models:
    """``KeypointDetector`` per (model, detector) and per worker thread, made on first use."""

    def __init__(self, models: dict[str, str | Path]):
        # A snapshot of each model file taken at start-up: every worker thread reads the same weights
        # as the card /v1/models shows, even if the file is replaced or removed while serving.
        self._snapshot = tempfile.TemporaryDirectory(prefix="facekeypoints-serve-")
        self.paths, self.sources = {}, {}
        for name, path in models.items():
            source = Path(path)
            if source.is_file():
                copy = Path(self._snapshot.name) / f"{len(self.paths)}{source.suffix}"
                shutil.copyfile(source, copy)
                self.paths[name], self.sources[name] = copy, str(path)
            else:
                self.paths[name] = path  # a shipped model's name: inside the package
        self._local = threading.local()

    def user_words(self, name: str, message: str) -> str:
        """``message`` with model ``name``'s snapshot path replaced by the file the user gave."""
        if name in self.sources:
            message = message.replace(str(self.paths[name]), self.sources[name])
        return message

    def get(self, model: str, detector: str) -> KeypointDetector:
        cache = self._local.__dict__.setdefault("detectors", {})
        if (model, detector) not in cache:
            cache[model, detector] = KeypointDetector(self.paths[model], detector=detector, threads=1)
        return cache[model, detector]


def _checked_models(models) -> dict[str, str | Path]:
    """``create_app``'s ``models`` as a dict of name -> checkpoint, ONNX file or shipped model name;
    None: the shipped ones. An empty mapping is refused, not taken for None."""
    if models is None:
        return {name: name for name in SHIPPED}
    if not isinstance(models, Mapping):
        raise TypeError(f"models must map a name to a model file or a shipped model's name (None: the shipped "
                        f"{', '.join(SHIPPED)}), got {type(models).__name__} {_cut(repr(models), 40)}")
    if not models:
        raise ValueError("models is empty; give at least one name -> model file, or None for the shipped models")
    for name, path in models.items():
        if not isinstance(name, str) or not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"models must map a name (str) to a model file or a shipped model's name (str or "
                            f"path), got {_cut(repr(name), 40)}: {_cut(repr(path), 40)}")
        if not name.strip() or not str(path).strip():
            raise ValueError(f"models holds an empty name or file ({name!r}: {str(path)!r}); give both")
    return dict(models)


def create_app(models: dict[str, str | Path] | None = None, *, detector: str = "haar", workers: int = 2,
               max_body: int = MAX_BODY, max_pixels: int | None = MAX_PIXELS, max_uploads: int = MAX_UPLOADS,
               upload_timeout: float = UPLOAD_TIMEOUT) -> FastAPI:
    """The service. ``models``: name -> checkpoint or ONNX file (default: the shipped kaggle15 and
    ibug68); ``detector``: the default face detector (``DETECTORS``); ``workers``: threads that run
    models (requests beyond them queue); ``max_uploads``: uploads read, queued or run at once (503
    beyond); ``upload_timeout``: seconds an upload may send nothing (408)."""
    # every argument checked before any model loads: a wrong type would otherwise surface as a bare
    # error from deep inside, or (max_pixels="5") only as a 500 to every upload once serving
    models = _checked_models(models)
    if not isinstance(detector, str):
        raise TypeError(f"detector must be a name of DETECTORS ({', '.join(sorted(DETECTORS))}), got "
                        f"{type(detector).__name__} {_cut(repr(detector), 40)}")
    detector = detector.lower()
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; known: {sorted(DETECTORS)}")
    for name, count in (("workers", workers), ("max_body", max_body), ("max_uploads", max_uploads)):
        check_count(name, count)
    check_count("max_pixels", max_pixels, none=True)  # None: no limit (the CLI's --max-pixels 0)
    if max_uploads > MAX_UPLOADS_LIMIT:
        raise ValueError(f"max_uploads must be at most {MAX_UPLOADS_LIMIT}, got {_cut(str(max_uploads), 20)}")
    if isinstance(upload_timeout, bool) or not isinstance(upload_timeout, numbers.Real):
        raise TypeError(f"upload_timeout must be a number of seconds, got {type(upload_timeout).__name__} "
                        f"{_cut(repr(upload_timeout), 40)}")
    if not 0 < upload_timeout <= MAX_UPLOAD_TIMEOUT:
        raise ValueError(f"upload_timeout must be over 0 and at most {MAX_UPLOAD_TIMEOUT} seconds, got {_cut(str(upload_timeout), 20)}")
    runnable, missing = _runnable_detectors()
    if detector in missing:
        raise ValueError(f"detector {detector!r}: {missing[detector]}")
    loaded, cards = _Models(models), {}
    for name in models:  # at start-up, not on a client's request: a bad file or detector stops the server here
        try:
            pipeline = loaded.get(name, detector)
            _check_finite_weights(pipeline.runner, loaded.sources.get(name, str(models[name])))
            cards[name] = finite_json(pipeline.card.summary())  # a diverged run's val_rmse is NaN: JSON null
        except (ValueError, FileNotFoundError, OSError) as err:  # the user's file named, not our snapshot of it
            raise ValueError(f"model {name!r}: {loaded.user_words(name, str(err))}") from None
    page_html = resources.files("facekeypoints").joinpath("serve", "static", "index.html").read_text()
    default_model = "kaggle15" if "kaggle15" in models else next(iter(models))
    app = FastAPI(title="facekeypoints", summary="Faces and their keypoints in a photo.",
                  version=_version(), docs_url=None, redoc_url=None,
                  redirect_slashes=False)  # /v1/keypoints/ gets the one-line 404, not an empty 307 curl prints nothing for  # both load from a CDN: blank offline
    app.add_middleware(_UploadLimit, limit=max_uploads)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keypoints")
    default_detector = detector  # the handler's query parameter takes the name

    @app.exception_handler(_ClientError)
    async def client_error(request: Request, err: _ClientError) -> JSONResponse:
        # a stalled upload's connection is closed: the rest of its body would otherwise be read on after the answer
        return JSONResponse({"error": str(err)}, status_code=err.status,
                            headers={"Connection": "close"} if err.status == 408 else None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:  # Starlette's 404/405, our shape
        return _route_error(_routes(app), request, err)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, err: RequestValidationError) -> JSONResponse:  # one error shape
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', 'invalid')}"
                             for e in err.errors())
        return JSONResponse({"error": _cut(problems or "invalid request")}, status_code=422)  # no repr quotes

    @app.exception_handler(Exception)
    async def server_error(request: Request, err: Exception) -> JSONResponse:  # no trace, no paths
        return JSONResponse({"error": f"internal error ({type(err).__name__})"}, status_code=500)

    def get(path: str, **kwargs):  # FastAPI's GET routes refuse HEAD (405): a twin, left out of the schema, answers it
        def register(endpoint):
            app.head(path, include_in_schema=False, **kwargs)(endpoint)
            return app.get(path, **kwargs)(endpoint)
        return register

    @get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @get("/v1/models")
    async def list_models() -> dict:
        return {"models": sorted(models), "default_model": default_model,
                "cards": {name: cards[name] for name in sorted(cards)}, "detectors": runnable,
                "default_detector": detector, "max_body_bytes": max_body, "max_pixels": max_pixels}

    @get("/", response_class=HTMLResponse)
    async def page() -> str:
        return page_html

    errors = {"400": "bad image or body", "404": "unknown model or detector", "408": "an upload that stalled",
              "411": "a body without Content-Length or chunked encoding",
              "413": "body or image over the limits", "415": "not an image content type, or a Content-Encoding",
              "422": "bad option", "501": "a detector not installed on this server",
              "503": "too many uploads at once (--max-uploads); try again"}
    described = {int(code): {**_ERROR, "description": words} for code, words in errors.items()}
    described[200] = {"description": "the keypoints (JSON), or with draw=true the drawing (JPEG; PNG past "
                                     f"{JPEG_MAX_SIDE} px a side)", "content": {"image/jpeg": _BINARY, "image/png": _BINARY}}
    body_doc = {"required": True, "content": {  # the handler reads the body itself: FastAPI cannot infer this
        "image/*": _BINARY, "application/octet-stream": _BINARY,
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, "model": {"type": "string", "enum": sorted(models)},
            "detector": {"type": "string", "enum": runnable}, "draw": {"type": "boolean"}}}}}}

    @app.post("/v1/keypoints", responses=described, openapi_extra={"requestBody": body_doc})
    async def keypoints(request: Request,
                        model: str | None = Query(None, json_schema_extra={"enum": sorted(models)}),
                        detector: str | None = Query(None, json_schema_extra={"enum": runnable}),
                        draw: bool = False) -> Response:
        """An image (multipart field ``file``, or the raw body with an image content type) -> the
        same JSON as ``facekeypoints predict`` (boxes, scores, named keypoints, timings) plus the
        model card's summary; with ``draw=true``, a JPEG of the keypoints drawn on the image."""
        start = time.perf_counter()
        _check_options(request)
        model, chosen = _choose(model, detector, "query option")  # refused before the body is read
        data, fields = await _upload(request, max_body, upload_timeout)
        if fields:  # multipart form fields model/detector/draw, as the query's; a clash with the query is a 422
            given = request.query_params
            if "draw" in given and "draw" in fields and \
                    _BOOLS.get(given["draw"].lower()) != _BOOLS.get(fields["draw"].lower()):
                _clash("draw", given["draw"], fields["draw"])
            if "draw" in fields:
                if fields["draw"].lower() not in _BOOLS:
                    raise _ClientError(422, f"form field 'draw' is {_short(fields['draw'])}; give true or false")
                draw = _BOOLS[fields["draw"].lower()]
            in_form = _choose(fields.get("model", given.get("model")), fields.get("detector", given.get("detector")),
                              "form field")
            # compared as resolved: IBUG68 is ibug68, but k and K are two models when both are served
            for name, query_choice, form_choice in zip(("model", "detector"), (model, chosen), in_form):
                if name in given and name in fields and query_choice != form_choice:
                    _clash(name, given[name], fields[name])
            model, chosen = in_form
        received = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(pool, _predict, loaded, model, chosen, data, max_pixels, draw)
        result, drawing, notes = await work  # notes: e.g. an animated GIF's frames after the first, unused
        broken = sum(not np.isfinite(face.keypoints).all() for face in result.faces)
        if broken:  # as `predict` reports them; the points themselves are JSON null (and not drawn)
            notes = notes + [f"the model gave non-finite keypoints for {broken} of {len(result.faces)} faces "
                             f"({'not drawn' if drawing is not None else 'null'})"]
        if drawing is not None:
            kind = "image/png" if drawing.startswith(b"\x89PNG") else "image/jpeg"
            return Response(drawing, media_type=kind, headers={"X-Notes": " | ".join(notes)} if notes else None)
        body = result.to_dict()
        body.update(source="upload", model=cards[model], detector=chosen, **({"notes": notes} if notes else {}))
        body["timings"] = {**body.get("timings", {}), "upload": round((received - start) * 1000, 3),
                           "total": round((time.perf_counter() - start) * 1000, 3)}
        return JSONResponse(body)  # to_dict gives null for non-finite numbers; the cards were made finite at start

    def _choose(model: str | None, detector: str | None, where: str) -> tuple[str, str]:
        """(model, detector) named exactly as served; 422 for an empty name, 404 for an unknown one.
        Both are case-insensitive (?model=IBUG68 as ?detector=HAAR) unless two models differ only in case."""
        if model == "" or detector == "":  # "?model=" is a mistake, not a wish for the default
            raise _ClientError(422, f"the {where} {'model' if model == '' else 'detector'} is empty; give a "
                                    f"name (models: {sorted(models)}) or leave the option out")
        model = model or default_model
        if model not in models:
            same = [name for name in models if name.lower() == model.lower()]
            if len(same) > 1:
                raise _ClientError(404, f"model {_short(model)} is ambiguous: the served {same} differ only in "
                                        "case; give the exact name")
            if not same:
                raise _ClientError(404, f"unknown model {_short(model)}; known: {sorted(models)}")
            model = same[0]
        chosen = (detector or default_detector).lower()
        if chosen in missing:
            raise _ClientError(501, f"detector {chosen!r} is not installed on this server; available: {runnable}")
        if chosen not in DETECTORS:
            raise _ClientError(404, f"unknown detector {_short(chosen)}; known: {runnable}")
        return model, chosen

    return app


def _clash(name: str, in_query: str, in_form: str):
    raise _ClientError(422, f"option {name!r} is given as {_short(in_query)} in the query and as "
                            f"{_short(in_form)} in the form; give it once")


def _runnable_detectors() -> tuple[list[str], dict[str, str]]:
    """(the face detectors this install can run, {name: why not} for the others): an optional extra
    (dlib) that is not installed is not offered to clients, nor answered with install advice."""
    from facekeypoints.infer.detectors import make_detector

    runnable, missing = [], {}
    for name in sorted(DETECTORS):
        try:
            make_detector(name)
        except Exception as err:  # noqa: BLE001 (an extra missing or broken: not offered; its reason is kept)
            missing[name] = str(err)
        else:
            runnable.append(name)
    return runnable, missing


def _check_finite_weights(runner, source: str) -> None:
    """Refuse a model whose weights hold NaN or infinity (a diverged run's last.pt): it would answer
    every request with no keypoints. ValueError naming ``source``, the file the user gave."""
    bad, total = _nonfinite_weights(runner)
    if bad:
        raise ValueError(f"{source}: {bad} of the model's {total} weight tensors hold NaN or infinite values (a "
                         "diverged training run's last.pt?), so it predicts no keypoints; serve a checkpoint with "
                         "finite weights, e.g. the run's best.pt")


def _nonfinite_weights(runner) -> tuple[int, int]:
    """(tensors with a NaN or infinite value, tensors) of a torch or ONNX Runtime runner's weights."""
    model = getattr(runner, "model", None)
    if model is not None:  # TorchRunner: parameters and buffers (BatchNorm's running statistics)
        import torch

        tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
        return sum(not bool(torch.isfinite(t).all()) for t in tensors), len(tensors)
    path = getattr(runner, "_path", None)
    if path is None:  # a runner of another kind: nothing to look at
        return 0, 0
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception:  # ONNX Runtime read it; a file the onnx package cannot parse is left unchecked here
        return 0, 0
    arrays = [numpy_helper.to_array(t) for t in graph.initializer]
    for node in graph.node:  # constant folding may keep weights as Constant nodes
        if node.op_type == "Constant":
            arrays += [numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value" and a.HasField("t")]
    arrays = [a for a in arrays if np.issubdtype(a.dtype, np.floating)]
    return sum(not np.isfinite(a).all() for a in arrays), len(arrays)


def _predict(loaded: _Models, model: str, detector: str, data: bytes, max_pixels: int | None, draw: bool):
    """In a worker thread: decode (the header's size checked first), detect, predict, maybe draw."""
    notes: list[str] = []
    try:
        rgb = decode_image(data, max_pixels=max_pixels, name="upload", notes=notes)
    except DataFormatError as err:
        reason = err.reason  # its hint (rename a video file) is for the CLI: the service takes images only
        raise _ClientError(413 if OVER_LIMIT in reason else 400, f"upload: {reason}") from None
    # the advice for an HTTP client: only a multi-page image or animation is told to send its pages
    notes = [f"{note} (send them as single images)" if note.endswith(MULTI_FRAME_NOTE)
             else f"{note} (the image was read; check it looks right)" for note in notes]
    try:
        pipeline = loaded.get(model, detector)
    except (ValueError, FileNotFoundError):  # found runnable at start-up (_runnable_detectors), failing now
        raise _ClientError(501, f"detector {detector!r} cannot run on this server") from None
    result = pipeline(rgb)
    note = unsearched_note(pipeline.detector, rgb.shape) if not len(result) else None
    if note and note[0] == "shrunk":  # say why a photo's small faces may be missing
        notes = notes + [f"no face found; faces under {math.ceil(note[1])} px are not searched in this "
                         f"{rgb.shape[1]}x{rgb.shape[0]} image (the {detector} detector shrinks it first): send a "
                         "crop around smaller faces"]
    elif note:
        notes = notes + [f"no face found; this {rgb.shape[1]}x{rgb.shape[0]} image is smaller than the smallest face "
                         f"the {detector} detector finds ({math.ceil(note[1])} px)"]
    if not draw:
        return result, None, notes
    bgr = cv2.cvtColor(result.draw(rgb), cv2.COLOR_RGB2BGR)
    ok, jpeg = (False, None) if max(bgr.shape[:2]) > JPEG_MAX_SIDE else \
        cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # JPEG stops at 65500 px a side: a very wide or tall image is drawn as PNG
        ok, png = cv2.imencode(".png", bgr)
        if not ok:
            raise _ClientError(422, f"the drawing of a {rgb.shape[1]}x{rgb.shape[0]} image cannot be encoded; "
                                    "ask without draw=true")
        height, width = bgr.shape[:2]
        side = ("wide", width) if width > JPEG_MAX_SIDE else ("tall", height) if height > JPEG_MAX_SIDE else None
        why = f"the image is too {side[0]} for JPEG ({side[1]} px; at most {JPEG_MAX_SIDE} px a side)" if side \
            else "the JPEG encoder refused it"
        return result, png.tobytes(), notes + [f"drawn as PNG: {why}"]
    return result, jpeg.tobytes(), notes


async def _upload(request: Request, max_body: int, timeout: float) -> tuple[bytes, dict[str, str]]:
    """The image bytes of a request and its multipart option fields, refused (413/411/415/400) before reading
    more than ``max_body``; 408 when no bytes come for ``timeout`` seconds."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body):
        raise (_ClientError(413, f"the body is over the limit of {max_body} bytes") if declared.isdigit()
               else _ClientError(400, "the Content-Length header is not a number"))
    if kind != "multipart/form-data" and not kind.startswith("image/") and kind != "application/octet-stream":
        raise _ClientError(415, f"send an image (content type image/..., or multipart with a 'file' field), "
                                f"not {kind or 'a body without a content type'!r}")
    # every Content-Encoding header and every item of each: a second header (identity, then gzip) counts too
    encodings = [item.strip().lower() for header in request.headers.getlist("content-encoding")
                 for item in header.split(",")]
    encoding = ", ".join(e for e in encodings if e not in ("", "identity"))
    if encoding:  # gzip bytes would be read as a broken image, and br ignored
        raise _ClientError(415, f"Content-Encoding {_short(encoding)} is not supported; send the image bytes as "
                                "they are")
    if declared is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
        # h11 reads such a body (an HTTP/1.0 POST) as empty: said, rather than "the body is empty"
        raise _ClientError(411, "the request has no Content-Length header (nor chunked Transfer-Encoding), so its "
                                "body cannot be read; send one")
    try:
        if kind == "multipart/form-data":
            return await _multipart_file(request, max_body, timeout)
        return await _raw_body(request, max_body, timeout), {}
    except ClientDisconnect:  # nobody will read the answer; without this, uvicorn prints a 50-line traceback
        raise _ClientError(400, "the upload was cut short: the client disconnected") from None


async def _raw_body(request: Request, max_body: int, timeout: float) -> bytes:
    """The body, written into one buffer: no list of chunks joined into a second copy. A BytesIO's
    value is its own buffer, not a copy (CPython), and so is a BytesIO made of it later."""
    body, size, stream = io.BytesIO(), 0, request.stream()
    declared = request.headers.get("content-length", "")  # checked by _upload: at most max_body
    # sized once: grown chunk by chunk it would be copied at each step past the allocator's spare
    # room, and the freed steps left memory behind (measured: 16 x 20 MB uploads, batch after batch);
    # once the first bytes came, so that clients sending headers alone hold no memory
    unsized = declared.isdigit() and int(declared) > 0
    while True:
        try:  # the wait for each chunk, not the whole upload: a slow link that keeps sending is served
            chunk = await asyncio.wait_for(anext(stream), timeout)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise _ClientError(408, f"the upload stalled: no bytes came for {timeout:g} s after {size} bytes; "
                                    "send the whole body without pausing") from None
        size += len(chunk)
        if size > max_body:
            raise _ClientError(413, f"the body is over the limit of {max_body} bytes")
        if unsized and chunk:
            body.seek(int(declared) - 1)
            body.write(b"\0")
            body.seek(0)
            unsized = False
        body.write(chunk)
    if not size:
        raise _ClientError(400, "the body is empty; send the image's bytes")
    body.truncate(size)  # nothing to cut when the whole declared length came (h11 sees to it)
    try:
        return body.getvalue()
    finally:  # this frame outlives the call (the StopAsyncIteration above keeps it till the next gc):
        body.close()  # it must not keep the body alive with it


async def _multipart_file(request: Request, max_body: int, timeout: float) -> tuple[bytes, dict[str, str]]:
    # read as a raw body is, the limit checked while streaming: a chunked upload (Go's multipart.Writer
    # over a pipe, Node's form-data with streams) has no Content-Length; kept for the checks below
    body = await _raw_body(request, max_body, timeout)
    # the boundary as the form parser reads it (its own header parser: BOUNDARY= as boundary=, quotes,
    # spaces; a parameter whose name merely ends in boundary, xboundary=, is another parameter)
    header = request.headers.get("content-type", "")
    boundary = parse_options_header(header)[1].get(b"boundary")
    delimiter = b"--" + boundary if boundary else None
    if boundary == b"":
        raise _ClientError(400, "the Content-Type header's boundary parameter is empty; give the boundary "
                                "line that separates the body's parts (curl -F and browsers set it)")
    if delimiter and delimiter not in body:
        declared = _short(boundary.decode("latin-1"))
        raise _ClientError(400, f"the multipart body does not contain the boundary {declared} that the "
                                f"Content-Type header declares{_boundary_hint(header, body)}; "
                                "send the boundary the body was written with")
    start = 0
    if delimiter and not body.startswith(delimiter) and b"\r\n" + delimiter in body:
        # a preamble before the first boundary (RFC 2046 allows it; the parser does not): skipped
        start = body.index(b"\r\n" + delimiter) + 2
    if delimiter:
        _check_part_heads(body, delimiter, start)

    given = start

    async def receive() -> dict:  # the form parser reads the body already read, a piece at a time:
        nonlocal given            # its copies of each piece stay small, and the file part goes to a
        piece = body[given:given + FORM_PIECE]  # temporary file (Starlette's) as it comes
        given += len(piece)
        return {"type": "http.request", "body": piece, "more_body": given < len(body)}
    request = Request(request.scope, receive)
    try:
        # a text part may hold the image too (below): bounded by the body's own length (at most max_body), not 1 MB
        # files beyond 'file' are let through to be named below (an option sent as a file, an unknown part)
        form = await request.form(max_files=MAX_FILE_PARTS, max_fields=MAX_TEXT_PARTS, max_part_size=max(len(body), 1024 * 1024))
    except Exception as err:  # Starlette's parser: a missing boundary, too many files or fields
        detail = getattr(err, "detail", None) or str(err) or type(err).__name__
        first_line_end = body[len(delimiter):len(delimiter) + 1] if delimiter and body.startswith(delimiter) else b""
        if delimiter and (first_line_end == b"\n" or re.search(rb"(?<!\r)\n" + re.escape(delimiter), body)):
            detail = "its lines end in a bare LF, not CRLF (RFC 2046); write each line's end as CRLF"
        raise _ClientError(400, f"the multipart body cannot be read: {_cut(str(detail), 120)}") from None
    fields = _form_options(form)
    if len(form.getlist("file")) > 1:  # the form keeps the last one: the others would go unanswered
        raise _ClientError(400, f"field 'file' is given {len(form.getlist('file'))} times; send one image per request")
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        # the parser ends quietly on a body without its closing boundary, dropping the unfinished part
        if delimiter and not body.startswith(delimiter + b"--", start) and b"\r\n" + delimiter + b"--" not in body:
            bare_lf = delimiter + b"--" in body
            raise _ClientError(400, "the multipart body's closing boundary line follows a bare LF, not CRLF "
                                    "(RFC 2046); end the last part with CRLF" if bare_lf else
                                    "the multipart body is cut short or malformed: it has no closing boundary "
                                    "line; send the whole upload")
    if isinstance(upload, str):  # a part named 'file' without filename= (curl -F file=<a.jpg): its bytes are the image
        del form, upload  # the parser's decoded text of the part
        data = _text_part(body, boundary, "file") if boundary else None
        if data is None:
            raise _ClientError(400, "field 'file' was sent as a text field (no filename=); send it as a file part")
        return data, fields
    if upload is None:
        others = sorted({name for name, value in form.multi_items() if not isinstance(value, str)})
        raise _ClientError(400, "the multipart body has no file field named 'file'" +
                           (f" (its file parts: {_cut(', '.join(map(repr, others)))})" if others else ""))
    body = None  # parsed: only the file part's copy (on disk) is read back, so one copy of the upload is held
    try:
        return await upload.read(), fields
    finally:
        await form.close()  # its temporary files, at once


def _check_part_heads(body: bytes, delimiter: bytes, start: int) -> None:
    """400 naming the part and the cause for a part header block the form parser refuses without
    saying why ("Invalid multipart data") or reads wrongly: a header line over its size limit, too
    many header lines, a folded line, a Content-Transfer-Encoding it does not decode."""
    # the longest header block the parser takes, plus one byte: a longer one breaks a limit
    longest = MAX_PART_HEADERS * (MAX_PART_HEADER_LINE + 2) + 3
    at, number = start, 0
    # the closing boundary (--) ends the parts; past the parser's own part limit it refuses the body
    # itself (a 20 MB body of empty parts is 2 million of them: looked at here, it held the event loop)
    while at >= 0 and body.startswith(delimiter + b"\r\n", at) and number <= MAX_FILE_PARTS + MAX_TEXT_PARTS:
        number += 1
        head_start = at + len(delimiter) + 2
        window_end = min(len(body), head_start + longest)
        head_end = 0 if body.startswith(b"\r\n", head_start) else body.find(b"\r\n\r\n", head_start, window_end)
        if head_end < 0 and window_end < head_start + longest:  # the body ends inside the header block: the parser says it
            return
        head_end = head_end - head_start if head_end > 0 else head_end  # 0: a part without headers
        lines = body[head_start:head_start + head_end if head_end >= 0 else window_end].split(b"\r\n") if head_end else []
        where = f"part {number}{_part_name(lines)}"
        for line in lines:
            if len(line) > MAX_PART_HEADER_LINE:
                raise _ClientError(400, f"the multipart body's {where} has a header line of over "
                                        f"{MAX_PART_HEADER_LINE} bytes ({_short(line[:40].decode('latin-1'), 50)}...); "
                                        "send shorter headers")
        if len(lines) > MAX_PART_HEADERS:
            raise _ClientError(400, f"the multipart body's {where} has {'over ' if head_end < 0 else ''}"
                                    f"{len(lines) - (head_end < 0)} header lines; at most {MAX_PART_HEADERS} are read")
        folded = next((line for line in lines if line[:1] in (b" ", b"\t")), None)
        if folded is not None:
            raise _ClientError(400, f"the multipart body's {where} has a header line that continues the one "
                                    f"before ({_short(folded.decode('latin-1'), 50)}): header line folding is not "
                                    "supported (RFC 7578); write each header on one line")
        encodings = [line.split(b":", 1)[1].strip().lower().decode("latin-1") for line in lines
                     if line.lower().startswith(b"content-transfer-encoding:")]
        encoding = next((e for e in encodings if e not in ("7bit", "8bit", "binary")), None)
        if encoding is not None:
            raise _ClientError(400, f"the multipart body's {where} has Content-Transfer-Encoding {_short(encoding)}, "
                                    "which is not decoded (RFC 7578 section 4.7); send the bytes as they are")
        at = body.find(b"\r\n" + delimiter, head_start + head_end)
        at = at + 2 if at >= 0 else at


def _part_name(lines: list[bytes]) -> str:
    """`` ('file')``: the name its Content-Disposition gives a multipart part, or nothing."""
    disposition = next((line for line in lines if line.lower().startswith(b"content-disposition:")), b"")
    name = parse_options_header(disposition.split(b":", 1)[-1])[1].get(b"name")
    return f" ({_short(name.decode('latin-1'), 40)})" if name else ""


def _boundary_hint(header: str, body: bytes) -> str:
    """What the body starts with instead, and which of several boundary parameters was read."""
    first_line = body.split(b"\n", 1)[0].rstrip(b"\r")
    hint = f" (its first line is {_short(first_line.decode('latin-1'), 60)})"
    given = re.findall(r"(?:^|;)\s*boundary\s*=\s*(\"[^\"]*\"|[^;]*)", header, re.I)
    if len(given) > 1:  # the last one counts, as the form parser reads the header
        hint += f"; the header gives boundary= {len(given)} times and the last one is used"
    return hint


def _form_options(form) -> dict[str, str]:
    """The option fields (model, detector, draw) of a multipart form; 422 for an option sent as a
    file or twice, and for an unknown text field (a misspelt ``modle`` would be ignored otherwise)."""
    fields: dict[str, str] = {}
    for name in OPTIONS:
        values = form.getlist(name)
        if len(values) > 1:
            raise _ClientError(422, f"form field {name!r} is given {len(values)} times; give it once")
        if values and not isinstance(values[0], str):
            raise _ClientError(422, f"form field {name!r} is a file; send it as a text field")
        if values:
            fields[name] = values[0]
    # unknown text fields, and unknown file parts beside 'file' (without it, the missing 'file' is said)
    unknown = [name for name, value in form.multi_items() if name not in (*OPTIONS, "file")
               and (isinstance(value, str) or "file" in form)]
    if unknown:
        close = difflib.get_close_matches(unknown[0], OPTIONS, n=1)
        raise _ClientError(422, f"unknown form field {_short(unknown[0])}"
                                f"{f' (did you mean {close[0]!r}?)' if close else ''}; known: file, {', '.join(OPTIONS)}")
    return fields


def _text_part(body: bytes, boundary: bytes, name: str) -> bytes | None:
    """The raw bytes of the last part named ``name`` without a filename in a multipart ``body`` (the
    form parser gives such a part as text, decoded, which would garble an image's bytes); None if not
    found."""
    found = None
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary)[1:]:
        head, sep, data = part.partition(b"\r\n\r\n")
        disposition = next((line for line in head.split(b"\r\n") if line.lower().startswith(b"content-disposition:")),
                           b"")
        # filename*= alone (RFC 5987) is a file part the form parser takes for text: its bytes are wanted too
        if sep and re.search(rb';\s*name="?' + re.escape(name.encode()) + rb'"?\s*(;|$)', disposition, re.I) \
                and not re.search(rb';\s*filename\s*=', disposition, re.I):
            found = data
    return found


def _check_options(request: Request) -> None:
    """Refuse unknown or repeated query options: a misspelt ``?modle=ibug68`` would otherwise be
    answered by the default model, a wrong answer that looks right."""
    params = request.query_params
    unknown = [name for name in params.keys() if name not in OPTIONS]
    if unknown:
        named = []
        for name in unknown[:3]:  # a client's long list is not echoed back whole
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            named.append(_short(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise _ClientError(422, f"unknown query option{'s' if len(unknown) > 1 else ''} {', '.join(named)}{more}; "
                                f"known: {', '.join(OPTIONS)}")
    repeated = [name for name in OPTIONS if len(params.getlist(name)) > 1]
    if repeated:
        raise _ClientError(422, f"query option {repeated[0]!r} is given {len(params.getlist(repeated[0]))} times; "
                                "give it once")


def _routes(app: FastAPI) -> dict[str, set[str]]:
    """path -> the methods it answers (a GET route's HEAD twin joined to it)."""
    found: dict[str, set[str]] = {}
    for route in app.routes:
        found.setdefault(route.path, set()).update(getattr(route, "methods", None) or ())
    return found


def _route_error(routes: dict[str, set[str]], request: Request, err: HTTPException) -> JSONResponse:
    """Starlette's 404 and 405 (``{"detail": "Not Found"}``) as the service's one-line error,
    saying what there is instead."""
    headers = dict(err.headers or {})
    if err.status_code == 404:
        listed = ", ".join(f"{'/'.join(sorted(methods - {'HEAD'}))} {path}" for path, methods in sorted(routes.items()))
        message = f"no such path {_short(request.url.path)}; the service has {listed}"
    elif err.status_code == 405:
        allowed = routes.get(request.url.path, set())
        headers["Allow"] = ", ".join(sorted(allowed))  # Starlette's names the first matching route's only
        use = " or ".join(sorted(allowed - {"HEAD"}))
        message = f"{request.method} is not allowed on {request.url.path}; use {use}"
    else:
        message = str(err.detail)
    return JSONResponse({"error": message}, status_code=err.status_code, headers=headers)


def _short(text: str, limit: int = 80) -> str:
    """``text`` quoted, cut to ``limit`` characters: a client's long value is not echoed back whole."""
    return repr(_cut(text, limit))


def _cut(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, unquoted (a message of ours that holds a client's value)."""
    return text if len(text) <= limit else text[:limit] + "..."


def _version() -> str:
    from importlib.metadata import version

    return version("facekeypoints")
