"""The keypoint service under load and under bad uploads, on loopback, stopping by itself.

``load``: the service runs in its own process (``facekeypoints serve``); ``--clients`` threads post
the same 640 x 480 photo (one face) for ``--seconds``. Prints requests/s, p50 and p99 latency,
errors (any answer but 200), and served faces/s against ``predict`` (``KeypointDetector``) on the
same photo in this process, as a ratio measured in the same run.

``malformed``: ``--uploads`` bad uploads (random bytes, truncated JPEG and PNG, headers declaring
huge images, wrong content types, empty bodies, broken multipart), then ``/healthz``. Prints how
many answers were 4xx and 5xx (5xx must be 0) and the server's peak memory (VmHWM).

Usage:
  python benchmarks/bench_serve.py load --clients 8 --seconds 30
  python benchmarks/bench_serve.py load --clients 8 --seconds 30 --detector cnn   # our CNN face detector
  python benchmarks/bench_serve.py malformed --uploads 1000
"""
from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import httpx
import numpy as np

from facekeypoints.infer.bench import demo_frame

CLI = Path(sys.executable).with_name("facekeypoints")


def _start(workers: int, detector: str = "haar") -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(CLI), "serve", "--port", str(port), "--workers", str(workers), "--detector", detector],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the service did not start: {proc.stderr.read()}")


def _peak_memory_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split("VmHWM:")[1].split()[0]) / 1024


def load(args) -> dict:
    photo = cv2.imencode(".jpg", cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR))[1].tobytes()
    proc, url = _start(args.workers, args.detector)
    try:
        with httpx.Client() as warm:  # load the models before timing
            for model in ("kaggle15",):
                warm.post(f"{url}/v1/keypoints?model={model}", content=photo, headers={"content-type": "image/jpeg"})
        latencies: list[float] = []
        errors, faces = [0], [0]
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    r = http.post(f"{url}/v1/keypoints", content=photo, headers={"content-type": "image/jpeg"})
                    with lock:
                        latencies.append((time.perf_counter() - start) * 1000)
                        if r.status_code != 200:
                            errors[0] += 1
                        else:
                            faces[0] += len(r.json()["faces"])

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if len(latencies) < 2:  # percentiles need two; said, not statistics' traceback
        raise SystemExit(f"bench_serve.py load: only {len(latencies)} requests finished in --seconds {args.seconds:g}; "
                         "give more --seconds")
    served = faces[0] / elapsed
    direct = _predict_rate(photo, args.seconds / 3, args.detector)
    quantiles = statistics.quantiles(latencies, n=100)
    return {"clients": args.clients, "workers": args.workers, "detector": args.detector, "seconds": round(elapsed, 1), "requests": len(latencies),
            "requests_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(quantiles[49], 1),
            "p99_ms": round(quantiles[98], 1), "errors": errors[0], "served_faces_per_s": round(served, 1),
            "predict_faces_per_s": round(direct, 1), "served_over_predict": round(served / direct, 3)}


def _predict_rate(photo: bytes, seconds: float, detector_name: str = "haar") -> float:
    """Faces/s of ``KeypointDetector`` on the same photo (decoding included, as the service does)."""
    from facekeypoints import KeypointDetector
    from facekeypoints.data.images import decode_image

    detector = KeypointDetector(detector=detector_name)
    detector(decode_image(photo))
    faces, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        faces += len(detector(decode_image(photo)))
    return faces / (time.perf_counter() - start)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def malformed(args) -> dict:
    rng = np.random.default_rng(0)
    frame = cv2.cvtColor(demo_frame(), cv2.COLOR_RGB2BGR)
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    png = cv2.imencode(".png", frame)[1].tobytes()
    kinds = {
        "random bytes": lambda: (rng.bytes(int(rng.integers(1, 5000))), "image/jpeg"),
        "truncated jpeg": lambda: (jpeg[: int(rng.integers(1, len(jpeg)))], "image/jpeg"),
        "truncated png": lambda: (png[: int(rng.integers(1, len(png)))], "image/png"),
        "huge declared png": lambda: (_png_header_only(int(rng.integers(9000, 60000)), int(rng.integers(9000, 60000))),
                                      "image/png"),
        "wrong content type": lambda: (jpeg, str(rng.choice(["text/plain", "application/json", "video/mp4", ""]))),
        "empty body": lambda: (b"", "image/jpeg"),
        "broken multipart": lambda: (b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + rng.bytes(300),
                                     "multipart/form-data; boundary=x"),
        "flipped bytes": lambda: (bytes(b ^ 0xFF if rng.random() < 0.01 else b for b in jpeg), "image/jpeg"),
    }
    proc, url = _start(args.workers)
    codes: dict[str, dict[int, int]] = {k: {} for k in kinds}
    try:
        with httpx.Client(timeout=60) as http:
            names = list(kinds)
            for i in range(args.uploads):
                kind = names[i % len(names)]
                body, content_type = kinds[kind]()
                headers = {"content-type": content_type} if content_type else {}
                code = http.post(f"{url}/v1/keypoints", content=body, headers=headers).status_code
                codes[kind][code] = codes[kind].get(code, 0) + 1
            healthy = http.get(url + "/healthz").status_code == 200
        peak = _peak_memory_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    all_codes = [c for per in codes.values() for c, n in per.items() for _ in range(n)]
    return {"uploads": args.uploads, "by_kind": codes, "5xx": sum(c >= 500 for c in all_codes),
            "4xx": sum(400 <= c < 500 for c in all_codes), "200": all_codes.count(200),
            "healthz_after": healthy, "server_peak_mb": round(peak, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("load")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--detector", default="haar", choices=("haar", "cnn", "dlib"), help="the service's face detector (haar, cnn), and predict's")
    p = sub.add_parser("malformed")
    p.add_argument("--uploads", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    _check_args(parser, args)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", file=sys.stderr)
    report = load(args) if args.mode == "load" else malformed(args)
    print(json.dumps(report, indent=2))
    return 0


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, before the service starts, what failed only after it (a traceback, or 100 s waiting for a
    service that refused its --workers): counts under 1, and --seconds that is not a finite number over 0."""
    for option in ("clients", "workers", "uploads"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            parser.error(f"argument --{option}: must be 1 or more, got {value}")
    seconds = getattr(args, "seconds", None)
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        parser.error(f"argument --seconds: must be a finite number over 0, got {seconds}")


if __name__ == "__main__":
    sys.exit(main())
