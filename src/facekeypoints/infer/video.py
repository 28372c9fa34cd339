"""Keypoints in video: track faces from frame to frame and smooth keypoints over time.

Each face found by the detector becomes a track. On the next frame the face is framed from the
previous frame's keypoints (the refinement framing), so the detector does not run on every frame
and its box jitter never reaches the keypoints; the crop is kept while the keypoints ask for only
a small change (``REFRAME_TOLERANCE``). A track is dropped when its keypoints stop looking like a
face (``framing.MAX_SHAPE_ERROR``) or leave the image. The detector runs when no track is left,
every ``redetect_every`` frames, on a scene cut (``SCENE_CUT``) and when a followed face's box holds
something else than on the previous frame (``FACE_GONE``: the face left), where its boxes confirm the
tracks (tracks without a box are dropped: the keypoint check alone cannot tell a face from a
face-shaped guess on background, or on a flat frame after a cut) and start tracks for new faces.
A face's ``box_score`` is the detector's from the last frame that detected it; ``tracked`` says
whether this frame's face was followed (True) or found by the detector on this frame (False).

Each frame's time is the capture's (``CAP_PROP_POS_MSEC``), so a variable-frame-rate video is
smoothed and reported (``time_s``) on its own clock; where the capture gives none (0, NaN) it is
``index / fps``, and a time that repeats the previous frame's is put half a frame after it. A first frame shown after a B-frame decoder's reorder delay (an
AVI's times come from decoding order) starts the clock: see ``DECODER_DELAY_FRAMES``. A frame whose
size differs from the first's (a stream that changes size mid-way) is not detected: OpenCV's FFmpeg
backend scales every frame to the first size and reports no change. (A custom capture's frame of
another size drops the tracks: its faces are detected afresh.)

Keypoints are smoothed with the One Euro filter (Casiez, Roussel and Vogel, CHI 2012): an
exponential low-pass filter whose cut-off frequency rises with the keypoints' speed, so a still face
stops jittering and a moving one does not lag. It is a dozen lines, written here from the paper;
no library is needed.

Examples
--------
>>> from facekeypoints import KeypointDetector                            # doctest: +SKIP
>>> for result in KeypointDetector().stream("clip.mp4"):                 # doctest: +SKIP
...     print(result.source, len(result))
"""
from __future__ import annotations

import functools
import math
import os
import queue
import re
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from facekeypoints.data import framing
from facekeypoints.data.images import _decoder_words, _write_stderr, decoder_output, decoder_warnings, read_image
from facekeypoints.data.walk import check_path
from facekeypoints.infer.inputs import URL, opencv_path, to_rgb
from facekeypoints.infer.results import IMAGE_SUFFIXES, Face, Result, _number

__all__ = ["OneEuroFilter", "stream", "keypoint_jitter", "open_video", "pixel_aspect", "FrameResult", "VideoFace",
           "IncompleteVideoWarning"]


class IncompleteVideoWarning(UserWarning):
    """stream() gave fewer frames than the video declares: some could not be decoded (skipped), or
    the file ends early. ``predict_video`` records it as a failure of the video."""


# A video file's frame count is its video stream's packets, counted by FFmpeg (``_stream_facts``).
# Where that gives none (no ffmpeg, a capture object), OpenCV's count is used: exact for containers
# whose index counts the frames; others (MKV, WebM, MPEG-TS, ...) give an estimate from duration x
# rate, which may be off (a truncated .ts's estimate shrinks with the file, so its missing end
# cannot be told from here).
EXACT_COUNT_SUFFIXES = (".avi", ".divx", ".mp4", ".mov", ".m4v", ".3gp", ".3g2", ".f4v", ".qt")
# An MP4's count is its track's samples, of which an edit list (a trim made with ffmpeg -c copy, some
# phones' videos) may show fewer: these end where the container's duration (from its header) ends.
# (An AVI's duration is no such check: FFmpeg estimates a truncated one's from what is left.)
EDIT_LIST_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp", ".3g2", ".f4v", ".qt")
# A frame that cannot be decoded is skipped, and reading goes on while the container says frames
# remain: a failed read may use up its frame (MJPG AVI) or none (FFmpeg's "partial file" of an MP4),
# so up to as many failed reads in a row as frames remain. Reading stops early only after this many
# failures in a row that took over MAX_FAILING_SECONDS (a huge declared count would take forever).
MAX_BAD_FRAMES = 25
MAX_FAILING_SECONDS = 30.0
# OpenCV times frames from the video stream's start, so the first frame is at 0 s, except where the
# container stores no display times (AVI, whose times come from decoding order): there a codec with
# B-frames (H.264, MPEG-4 ASP/DivX/Xvid) shows its first frame after its reorder delay, at most 16
# frames (H.264's limit). A first frame read cleanly (no failed read, no damage reported) at such a
# time is taken as that delay, and every frame's time is taken relative to it.
DECODER_DELAY_FRAMES = 16

# Threads FFmpeg decodes a video with (see open_video)
DECODER_THREADS = 1



class OneEuroFilter:
    """One Euro filter over arrays of points (Casiez et al. 2012).

    ``min_cutoff`` (Hz) sets the smoothing of a still signal, ``beta`` how fast the cut-off rises
    with speed, ``d_cutoff`` (Hz) the smoothing of the speed estimate. Unlike the paper, speed is
    measured in ``scale`` units per second (pass the face size), so one ``beta`` fits faces of any
    size in pixels. ``filter(x, t)``: x (K, 2) at time t seconds -> (K, 2) filtered.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 5.0, d_cutoff: float = 1.0):
        if not (0 < min_cutoff < math.inf and 0 < d_cutoff < math.inf and 0 <= beta < math.inf):  # NaN fails too
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
        """Smoothing factor of a first-order low-pass filter with this cut-off, sampled every dt seconds."""
        return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))

    def filter(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """(K, 2) raw points at time ``t`` (seconds, increasing) -> (K, 2) smoothed points."""
        x = np.asarray(x, np.float64)
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = t - self.t
        a_d = self._alpha(dt, self.d_cutoff)
        self.dx = a_d * (x - self.x) / dt + (1 - a_d) * self.dx
        speed = np.linalg.norm(self.dx, axis=-1, keepdims=True) / max(scale, 1e-9)
        a = self._alpha(dt, self.min_cutoff + self.beta * speed)
        self.x, self.t = a * x + (1 - a) * self.x, float(t)
        return self.x.copy()


# A tracked face keeps its crop until its keypoints ask for one whose corners lie more than this
# fraction of the crop's side away: a still face is then seen through the same crop on every frame,
# so only pixel noise moves its keypoints, and a model that is not perfectly equivariant does not
# make the crop wander. On the still clip of ``facekeypoints bench`` a quick 25-epoch keypoint_net
# jittered 4.20 px/frame without this (0.59 smoothed) and 0.21 px/frame with it (0.03 smoothed).
REFRAME_TOLERANCE = 0.03

# A frame whose 16x16 grey thumbnail differs from the previous frame's by more than this mean
# absolute difference (0..255) is a scene cut: the detector runs on it, so a track does not outlive
# its face. Measured at 320x240: pixel noise (std 3) 0.07, a pan of 8 px/frame 9-18, of 16 px/frame
# 18-33, a 5% zoom 11; a cut to a flat colour 57, cuts between 6 photos 37-63.
SCENE_CUT = 30.0

# A face can leave its place without a cut (it walks out, the shot moves on): the model, shown the
# background, still gives keypoints of a face's shape, which shrink frame by frame. So each followed
# face's box is compared with what it held on the previous frame: its 16x16 grey thumbnail (the box
# moves with the keypoints, so motion is compensated) differing by a mean of more than this (0..255)
# runs the detector, which confirms or drops the track. Measured at 640x480 with the default model:
# a face moving 4-16 px/frame over texture (or the camera panning) 0-5, zooming 2%/frame 1-3, turning
# 3 deg/frame 7-8; a face gone (to flat grey, to texture, to another place) 50-76. A model that cannot
# follow motion (the tests' mean face) gives 9-22 at 4-8 px/frame and 25-37 at 16 (it detects more).
FACE_GONE = 25.0
# A followed face whose box side has grown or shrunk by more than this fraction since the detector last
# found or confirmed it is detected again on that frame: a face being covered (a hand rising over it)
# is followed by keypoints that crowd into what is left of it, and its box shrank frame by frame (180 to
# 114 px over 5 frames of a 640x480 test, the cover rising by 8% of the face a frame) until the next
# scheduled detection. The detector confirms a face that really moved nearer or away (its own box
# changed alike: one extra detection) and re-finds one whose keypoints shrank while its box did not.
FACE_RESIZED = 0.15


@dataclass
class VideoFace(Face):
    """A Face of a video frame: ``tracked`` is True when it was followed from the previous frame's
    keypoints, False when the detector found it on this frame."""

    tracked: bool = False

    def to_dict(self) -> dict:
        return {**super().to_dict(), "tracked": bool(self.tracked)}


@dataclass
class FrameResult(Result):
    """A Result of a video frame: its ``frame`` index and ``time_s`` (seconds, the capture's time)."""

    frame: int = 0
    time_s: float = 0.0

    # a frame's source ("clip.mp4#frame=5") names no file: no stat per frame to remember which one
    __setattr__ = object.__setattr__

    def to_dict(self) -> dict:
        d = super().to_dict()
        return {"source": d.pop("source"), "frame": int(self.frame),
                "time_s": _number(self.time_s, 3), **d}


@dataclass
class _Track:
    keypoints: np.ndarray  # (K, 2) raw keypoints of the last frame
    box: np.ndarray  # (4,) detector box, or the box a detector would draw around the keypoints
    box_score: float
    smoother: OneEuroFilter | None
    frame: np.ndarray | None = None  # (2, 3) crop the face was last seen through
    detected: bool = True  # found (or confirmed) by the detector on this frame, not only followed
    thumb: np.ndarray | None = None  # (16, 16) grey thumbnail of its box on the last frame (_box_thumb)
    side: float = 0.0  # its keypoints' box side when the detector last found or confirmed it (FACE_RESIZED)
    found_side: float = 0.0  # the side of the detector's own box then


def open_video(source) -> tuple[cv2.VideoCapture, str, float]:
    """A path or an open ``cv2.VideoCapture`` (or any object with its ``read``, ``get`` and
    ``isOpened``) -> (capture, name, frames per second; 30 when unknown). A capture is named by
    its ``name`` attribute, where it has one."""
    if not isinstance(source, (str, Path)):
        capture, name = source, str(getattr(source, "name", "<capture>"))
    else:
        if not str(source).strip():  # Path("") is ".", the current folder
            raise ValueError("stream() source is an empty path; pass a video file or an open cv2.VideoCapture")
        path = Path(source)
        check_path(path)  # a name too long: Path.is_dir() raised it as a bare OSError
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, not a video file; stream() reads one video (for the videos in a "
                             "folder, use facekeypoints predict FOLDER or predict_paths)")
        if URL.match(str(source)) and not path.exists():
            # named as given: Path() turns http:// into http:/
            raise ValueError(f"{source}: URLs are not read (nothing is downloaded); save the video to a file first, "
                             "or pass an open cv2.VideoCapture")
        if str(source) == "-" and not path.exists():
            raise ValueError("-: reading from standard input is not supported; save the video to a file first")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such video file")
        name = opencv_path(path)  # a name that is no UTF-8 crashed OpenCV
        if path.suffix.lower() in STILL_SUFFIXES and cv2.haveImageReader(name):
            return _Photo(path, name), name, 30.0
        with decoder_output() as said:  # FFmpeg's "[mov,mp4,...] moov atom not found" names no file
            # One decoding thread: FFmpeg's frame threads decode several frames at once, and what it says of
            # damage came out while another frame was read, so each run named other frames (about 1/3 slower
            # to decode a 1080p H.264 here, 5 ms a frame, small beside the keypoints' work)
            capture = cv2.VideoCapture(name, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, DECODER_THREADS])
        if not capture.isOpened():  # any backend of OpenCV's, as before, which says what is wrong
            capture.release()
            with decoder_output() as said:
                capture = cv2.VideoCapture(name)
        if said and not capture.isOpened():  # what FFmpeg said goes into the refusal
            capture.release()
            raise ValueError(f"{name}: OpenCV cannot open this video (damaged or truncated, an unknown codec, or not "
                             f"a video); the decoder said: {'; '.join(said)[:500]}")
        if said:
            warnings.warn(f"{name}: the image decoder warned: {'; '.join(said)[:500]} (the video was opened; its "
                          "frames may be damaged)", stacklevel=2)
        if capture.isOpened() and capture.getBackendName() == "FFMPEG" and (_interlaced(name) or _mirrored(name)):
            count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
            capture.release()
            capture = _FfmpegCapture(name, count)
    if not capture.isOpened():
        if not isinstance(source, (str, Path)):  # the caller's capture: no file of ours to call damaged
            raise ValueError(f"{name}: the capture given is not open (a camera index that is no camera here, a "
                             "file OpenCV could not open, or a capture already released); check "
                             "capture.isOpened() before streaming it")
        if _audio_only(name):
            raise ValueError(f"{name}: has sound streams and no video stream (an audio file): no frames to find faces in")
        raise ValueError(f"{name}: OpenCV cannot open this video (damaged or truncated, an unknown codec, or not a video)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, name, fps if fps and fps > 0 and math.isfinite(fps) else 30.0


def _video_header(path: str) -> str:
    """FFmpeg's line for the file's first video stream ("h264 (High) ..., yuv420p(top first), 720x576
    [SAR 16:15 DAR 4:3], ..."), from the header alone (FFmpeg exits asking for an output); "" if none.
    Asked once per file as it is now: open_video and the drawing (pixel_aspect) both need it."""
    video = re.search(r"Stream #0:.*?: Video: (.*)", _ffmpeg_said(path))
    return video[1] if video else ""


def _audio_only(path: str) -> bool:
    """Whether FFmpeg finds sound streams in the file and no video stream (a refusal then says so)."""
    said = _ffmpeg_said(path)
    return bool(re.search(r"Stream #0:.*?: Audio: ", said)) and not re.search(r"Stream #0:.*?: Video: ", said)


def _ffmpeg_said(path: str) -> str:
    """What FFmpeg says of the file's header (its streams), asked once per file as it is now."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return _probed_header(path, st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=64)
def _probed_header(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """_ffmpeg_said's FFmpeg run; the file's size, time and inode key it, so a changed file is asked again."""
    import subprocess

    import imageio_ffmpeg

    try:
        return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", f"file:{path}"],
                              capture_output=True, timeout=60).stderr.decode("utf-8", "replace")
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return ""


def _interlaced(path: str) -> bool:
    """Whether FFmpeg calls the file's first video stream interlaced (its pixel format "(top first)",
    "(bottom coded first)" and the like)."""
    return bool(re.search(r"\b(?:top|bottom)(?: coded)? first\b", _video_header(path)))  # "(swapped)" too


def pixel_aspect(path: str | Path) -> Fraction | None:
    """The sample (pixel) aspect ratio of a video file's frames where it is not square (DV and DVD
    video, anamorphic recordings: 720x576 shown 4:3 or 16:9), else None. Frames are read and drawn in
    stored pixels; the drawn video carries this ratio so that players show it as the source."""
    # "[SAR 16:11 DAR 64:33]" (the stream's) or, from Matroska's header, "SAR 16:11 DAR 64:33" bare
    found = re.search(r"\bSAR (\d+):(\d+) DAR", _video_header(str(path)))
    if not found or not int(found[1]) or not int(found[2]):
        return None
    sar = Fraction(int(found[1]), int(found[2]))
    return None if sar == 1 else sar


def _mirrored(path: str) -> bool:
    """Whether an MP4/MOV file's video track shows its frames mirrored: its track header's display
    matrix has a negative determinant (a flip, maybe with a turn). FFmpeg's header line cannot say it
    (a mirror reads "rotation of -180.00 degrees", as a half turn does), so the boxes are read here:
    moov > trak > tkhd of the track whose handler (mdia > hdlr) is video. Any other file, or a damaged
    one: False."""
    if Path(path).suffix.lower() not in EDIT_LIST_SUFFIXES:
        return False
    import struct

    def boxes(f, end):  # (type, payload start, payload end) of each box from f's position up to end
        while f.tell() + 8 <= end:
            start = f.tell()
            size, kind = struct.unpack(">I4s", f.read(8))
            head = 8
            if size == 1:
                size, head = struct.unpack(">Q", f.read(8))[0], 16
            elif size == 0:
                size = end - start
            if size < head or start + size > end:
                return
            yield kind, start + head, start + size
            f.seek(start + size)

    def child(f, kind, body, stop):  # (payload start, end) of the first box of ``kind`` in body..stop
        f.seek(body)
        return next(((b, e) for k, b, e in list(boxes(f, stop)) if k == kind), None)

    try:
        with open(path, "rb") as f:
            moov = child(f, b"moov", 0, f.seek(0, 2))
            if moov is None:
                return False
            f.seek(moov[0])
            for kind, body, stop in list(boxes(f, moov[1])):
                if kind != b"trak":
                    continue
                tkhd, mdia = child(f, b"tkhd", body, stop), child(f, b"mdia", body, stop)
                hdlr = child(f, b"hdlr", *mdia) if mdia else None
                if tkhd is None or hdlr is None or hdlr[1] - hdlr[0] < 12:
                    continue
                f.seek(hdlr[0] + 8)  # version and flags, pre_defined, then the handler type
                if f.read(4) != b"vide":  # the picture's track, not audio, text or time code
                    continue
                f.seek(tkhd[0])
                at = tkhd[0] + (52 if f.read(1)[0] == 1 else 40)  # the matrix, after version 1's 64-bit times
                if at + 36 > tkhd[1]:
                    continue
                f.seek(at)
                a, b, _, c, d, *_ = struct.unpack(">9i", f.read(36))
                if a * d - b * c < 0:
                    return True
    except (OSError, struct.error, IndexError):
        return False
    return False


# FFmpeg's per-frame line from its showinfo filter: the frame's time and size as it leaves the filters
_SHOWINFO = re.compile(r"\] \[info\] n:\s*\d+ .*?pts_time:(\S+) .*? s:(\d+)x(\d+) ")
_LEVEL = re.compile(r"^((?:\[[^\]]+ @ 0x[0-9a-fA-F]+\] )*)\[(warning|error|fatal|panic)\] (.*)")
# what FFmpeg says from its output side (the raw frames written, the colour conversion, the filters) is no
# damage of the video read
_NOT_DAMAGE = re.compile(r"^\[(?:vost#|out#|rawvideo|swscaler|Parsed_|graph|AVFilterGraph|fc#)")
_END = "end"  # the reader thread's last entry: ("end", what FFmpeg said after the last frame)


class _FfmpegCapture:
    """A video read by FFmpeg's own program (imageio-ffmpeg's binary) behind the capture methods stream()
    uses, for what OpenCV's build reads wrong without a word: interlaced video, whose frames it hands to a
    scaler that refuses them ("Cannot convert interlaced to progressive frames") and returns black (0
    faces), deinterlaced here one frame per frame (yadif); and a mirroring display matrix, which OpenCV
    applies as a half turn (faces upside down) and FFmpeg as the flip it is.

    Run directly rather than through imageio-ffmpeg's reader, which numbers frames by counting them and
    keeps FFmpeg's words in its log: here FFmpeg's showinfo filter gives each frame's own time (FFmpeg
    times them from the first frame; a frame the decoder lost leaves a gap in the times, which stream() counts as it does
    for OpenCV's captures), and what the demuxer and decoder say of damage is passed on to stderr as
    FFmpeg inside OpenCV says it, where stream() catches it for the frame being read (``decoder_output``).
    Every frame comes at the first frame's size (FFmpeg scales later sizes to it, as OpenCV does)."""

    def __init__(self, name: str, count: float):
        import subprocess
        import threading

        import imageio_ffmpeg

        self.name, self._count, self._read, self._time, self._ended = name, count, 0, 0.0, False
        self._origin: float | None = None
        fps = re.search(r"(\d+(?:\.\d+)?) fps", _video_header(name))
        self._fps = float(fps[1]) if fps and float(fps[1]) > 0 else 30.0
        # passthrough: each decoded frame once (a constant-rate output would repeat or drop frames of a
        # variable-rate video to fit its rate); deint=interlaced leaves progressive frames as they are; one
        # decoding thread, as OpenCV's capture here, so that what it says comes near the frame it concerns
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info",
                   "-threads", "1", "-i", f"file:{name}", "-fps_mode", "passthrough", "-vf",
                   "yadif=mode=send_frame:deint=interlaced,showinfo", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE)
        except OSError as err:
            raise ValueError(f"{name}: FFmpeg cannot be started to read this video ({err})") from None
        self._frames: queue.Queue = queue.Queue()  # (time, width, height, [what FFmpeg said before it]) | (_END, said)
        self._reader = threading.Thread(target=self._listen, daemon=True)
        self._reader.start()
        # the first frame is waited for here: its size is the video's (a size limit is checked before any
        # read), and a video FFmpeg cannot read at all is refused as OpenCV's captures are
        self._first = self._next()
        if self._first[0] == _END:
            said = "; ".join(_decoder_words(line) for line in self._first[1])[:500]
            self.release()
            raise ValueError(f"{name}: FFmpeg cannot read this video ({said or 'it gave no frame'})")
        self._size = self._first[1:3]

    def _listen(self) -> None:
        """FFmpeg's stderr, line by line: each frame's showinfo line queued with the damage said before it."""
        said = []
        for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if frame := _SHOWINFO.search(line):  # a time FFmpeg does not know ("NOPTS") is the rate's next
                try:
                    t = float(frame[1])
                except ValueError:
                    t = math.nan
                self._frames.put((t, int(frame[2]), int(frame[3]), said))
                said = []
            elif (level := _LEVEL.match(line)) and not _NOT_DAMAGE.match(line):
                said.append(f"{level[1]}{level[3]}")  # FFmpeg's own form: "[h264 @ 0x55..] error while ..."
        self._frames.put((_END, said))

    def _next(self) -> tuple:
        try:
            return self._frames.get(timeout=MAX_FAILING_SECONDS * 2)
        except queue.Empty:  # FFmpeg hangs: taken as its end
            return _END, [f"[ffmpeg @ 0x0] gave nothing for {MAX_FAILING_SECONDS * 2:g} s"]

    def read(self):
        if self._ended:  # asked again after the end (stream() tries on to the declared count): at once
            return False, None
        frame, self._first = (self._first, None) if self._first is not None else (self._next(), None)
        if frame[0] == _END:
            self._ended = True
            if frame[1]:  # what FFmpeg said at the end (a failed read's words, for stream() to report)
                _write_stderr("".join(f"{line}\n" for line in frame[1]).encode())
            return False, None
        t, _, _, said = frame
        if said:  # where stream() catches a decoder's words for this frame
            _write_stderr("".join(f"{line}\n" for line in said).encode())
        width, height = self._size  # every frame at the first one's size: FFmpeg scales to it
        data = self._process.stdout.read(width * height * 3)
        if len(data) < width * height * 3:  # cut short: FFmpeg stopped
            self._ended = True
            warnings.warn(f"{self.name} frame {self._read}: FFmpeg stopped reading (its output ended mid-frame)",
                          stacklevel=2)
            return False, None
        if self._origin is None and math.isfinite(t):  # times from the video's first frame, as OpenCV gives them
            self._origin = t  # (FFmpeg's count from the file's earliest stream: a late video, after its audio)
        t = t - self._origin if math.isfinite(t) else (self._time + 1 / self._fps if self._read else 0.0)
        self._read, self._time = self._read + 1, t
        return True, np.frombuffer(data, np.uint8).reshape(height, width, 3)

    def get(self, prop: int) -> float:
        width, height = self._size
        return {cv2.CAP_PROP_POS_MSEC: self._time * 1000.0, cv2.CAP_PROP_POS_FRAMES: float(self._read),
                cv2.CAP_PROP_FPS: self._fps, cv2.CAP_PROP_FRAME_COUNT: self._count,
                cv2.CAP_PROP_FRAME_WIDTH: float(width), cv2.CAP_PROP_FRAME_HEIGHT: float(height)}.get(prop, 0.0)

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def release(self) -> None:
        process = getattr(self, "_process", None)
        if process is None:
            return
        self._ended = True
        if process.poll() is None:
            process.kill()  # ends FFmpeg; its pipes close with it
        process.wait()
        process.stdout.close()
        self._reader.join(timeout=5)
        process.stderr.close()


# A photo given to stream() is read as every photo is (read_image: EXIF orientation, transparency over
# white, 16-bit and CMYK), as one frame; OpenCV's video reader ignores all of that. A GIF stays a video.
STILL_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s != ".gif")


class _Photo:
    """A photo as a capture of one frame (BGR, as OpenCV's capture gives frames)."""

    def __init__(self, path: Path, name: str):
        self.name, self._frame = name, cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR)

    def read(self):
        frame, self._frame = self._frame, None
        return frame is not None, frame

    def get(self, prop: int) -> float:
        return 1.0 if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def release(self) -> None:
        self._frame = None


def _follow(predictor, rgb: np.ndarray, tracks: list[_Track], timings: dict) -> tuple[list[_Track], bool]:
    """Frame every track on its last keypoints (keeping its crop while the change is small), predict,
    and keep the tracks whose new keypoints are still face-shaped and inside the image. Also says
    whether a kept track's box holds something else than on the previous frame (``FACE_GONE``)."""
    size = predictor.input_size
    frames, error = framing.frames_from_keypoints(np.array([t.keypoints for t in tracks]), predictor.schema, size)
    alive = [i for i in range(len(tracks)) if error[i] <= framing.MAX_SHAPE_ERROR]
    if not alive:
        return [], False
    for i in alive:
        old = tracks[i].frame
        if old is None or framing.frame_shift(old, frames[i], size)[0] > REFRAME_TOLERANCE:
            tracks[i].frame = frames[i]
    kp = predictor.locate([rgb], np.zeros(len(alive), int), np.array([tracks[i].frame for i in alive]), timings,
                          refine=False)
    new_frames, new_error = framing.frames_from_keypoints(kp, predictor.schema, size)
    h, w = rgb.shape[:2]
    kept, changed = [], False
    for j, i in enumerate(alive):
        centre = kp[j].mean(0)
        if new_error[j] <= framing.MAX_SHAPE_ERROR and 0 <= centre[0] < w and 0 <= centre[1] < h:
            tracks[i].keypoints, tracks[i].box = kp[j], framing.box_from_frame(new_frames[j], size, predictor.box_frame)
            tracks[i].detected = False
            thumb = _box_thumb(rgb, tracks[i].box)
            changed = changed or _face_changed(tracks[i].thumb, thumb) or _resized(tracks[i])
            tracks[i].thumb = thumb
            kept.append(tracks[i])
    return kept, changed


def _best_match(box: np.ndarray, boxes: list[np.ndarray], taken: set) -> int:
    """Index of the box in ``boxes`` (not in ``taken``) overlapping ``box`` most with IoU > 0.3, else -1."""
    overlap = [framing.box_iou(box, b) if i not in taken else 0.0 for i, b in enumerate(boxes)]
    best = int(np.argmax(overlap)) if overlap else -1
    return best if best >= 0 and overlap[best] > 0.3 else -1


def _detect(predictor, rgb: np.ndarray, current: list[_Track], lost: list[_Track], smoothing: dict | None,
            timings: dict) -> list[_Track]:
    """Run the detector. A box over a face tracked on this frame confirms that track (kept as it is);
    tracks no box confirms are dropped; other boxes start new tracks, which take the smoother of a
    recently lost track they overlap (so a face found again does not restart its filter)."""
    start = time.perf_counter()
    boxes = predictor.find_faces(rgb, None, "video frame")
    timings["detection"] = timings.get("detection", 0.0) + (time.perf_counter() - start) * 1000
    current_boxes = [t.box for t in current]
    out, taken, new, sizes = [], set(), [], []  # sizes: each new box's (side, found_side) to keep, or None
    for box in boxes:
        match = _best_match(box, current_boxes, taken)
        if match >= 0 and _drifted(current[match], box):
            # the followed keypoints changed size unlike the face the detector sees (crowding into the
            # uncovered part of a face): it is found again from the detector's box, smoothing kept, and
            # its sizes at the last agreeing detection kept too, so that it is looked at again while the
            # keypoints still disagree (the keypoints of a half-covered face stay small)
            taken.add(match)
            lost = [*lost, current[match]]
            new.append(box)
            sizes.append((current[match].side, current[match].found_side))
        elif match >= 0:
            taken.add(match)
            current[match].box_score, current[match].detected = float(box[4]), True  # this frame's score
            current[match].side, current[match].found_side = _side(current[match].box), _side(box)
            out.append(current[match])
        else:
            new.append(box)
            sizes.append(None)
    frames = np.array([framing.frame_from_box(b, predictor.input_size, predictor.box_frame)
                       for b in new]).reshape(-1, 2, 3)
    kp = predictor.locate([rgb], np.zeros(len(new), int), frames, timings)
    lost_boxes, reused = [t.box for t in lost], set()
    if predictor.alignable and len(new):  # the box the next frame's keypoints will give, for its thumbnail
        seen = framing.frames_from_keypoints(kp, predictor.schema, predictor.input_size)[0]
    for j, (box, points) in enumerate(zip(new, kp)):
        match = _best_match(box, lost_boxes, reused)
        reused.add(match)
        smoother = lost[match].smoother if match >= 0 else (
            OneEuroFilter(**smoothing) if smoothing is not None else None)
        own = (framing.box_from_frame(seen[j], predictor.input_size, predictor.box_frame)
               if predictor.alignable and np.isfinite(seen[j]).all() else None)  # the keypoints' box
        side, found_side = sizes[j] or (_side(box if own is None else own), _side(box))
        out.append(_Track(points, box[:4].copy(), float(box[4]), smoother,
                          thumb=None if own is None else _box_thumb(rgb, own), side=side, found_side=found_side))
    return out


def _side(box: np.ndarray) -> float:
    """The side of the square of a box's area."""
    return math.sqrt(max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0))


def _resized(track: _Track) -> bool:
    """Whether a followed face's box side is more than FACE_RESIZED off its side at its last detection."""
    return track.side > 0 and abs(_side(track.box) / track.side - 1) > FACE_RESIZED


def _drifted(track: _Track, box: np.ndarray) -> bool:
    """Whether the track's keypoints' box changed size since its last detection more than FACE_RESIZED
    unlike the detector's ``box`` did: each is compared with its own kind (a detector's boxes may be
    tighter or looser than the keypoints' box, and are turned-face dependent)."""
    if not (track.side > 0 and track.found_side > 0 and _side(box) > 0):
        return False
    return abs((_side(track.box) / track.side) / (_side(box) / track.found_side) - 1) > FACE_RESIZED


def stream(predictor, source, *, redetect_every: int = 10, smooth: bool = True, min_cutoff: float = 1.0,
           beta: float = 5.0) -> Iterator[Result]:
    """Yield one Result per frame of ``source`` (a video path or an open ``cv2.VideoCapture``, which
    is left open for the caller to release). A capture the caller moved on (``set(CAP_PROP_POS_FRAMES,
    n)`` or frames read) numbers its frames from its position. A photo's path (not a GIF's) gives one
    frame, read as the detector reads the photo (``read_image``: EXIF orientation, transparency).

    ``predictor`` is a KeypointDetector with a face detector (or a whole-photo model, which sees
    every frame whole). Faces are tracked (see the module docstring) and the detector runs every
    ``redetect_every`` frames; with ``smooth`` keypoints pass through a One Euro filter
    (``min_cutoff`` Hz, ``beta`` per face size per second). Boxes of tracked faces are derived from
    their keypoints.

    A frame that cannot be decoded is skipped with a warning, and reading goes on to the declared
    frame count (see ``MAX_BAD_FRAMES``); the frames a run of failed reads lost are told from the
    capture's times of the frames around it (``_frames_lost``), so each frame keeps its own index.
    After damage the decoder may also drop frames with no failed read: a jump in the times after
    damage was reported counts the frames that fit in it as skipped (``_gap_frames``; without damage
    a jump is a variable frame rate), and a skipped frame shown late keeps its index (``_late_frame``).
    A video with frames missing, skipped or after its end (``frames_missing``), gets an
    ``IncompleteVideoWarning`` once it is read.
    """
    if predictor.detector is None and predictor.framing == "kaggle":
        raise ValueError("stream() needs a KeypointDetector with a face detector (detector='haar' or an object)")
    if redetect_every < 1:
        raise ValueError(f"redetect_every must be at least 1, got {redetect_every}")
    capture, name, fps = open_video(source)
    # a capture named by its file is probed too (predict_video's); a photo has nothing to probe
    probed = Path(name).is_file() and not isinstance(capture, _Photo)
    facts = _stream_facts(name) if probed else _StreamFacts()
    declared, suffix = _declared_frames(capture), Path(name).suffix.lower()
    exact = suffix in EXACT_COUNT_SUFFIXES
    # the stream's packets, where the container's count is an estimate (from its longest stream's
    # duration: audio may last longer) or, in an AVI, spans no more than FFmpeg finds of the file (a
    # variable-rate AVI counts ticks of its time base or empty drop chunks; a truncated one's count
    # spans more than is left, and stands)
    packets = facts.frames and (not exact or suffix not in EDIT_LIST_SUFFIXES
                                and facts.frames < declared <= (facts.duration + 0.5 / fps) * fps)
    declared, exact = (facts.frames, True) if packets else (declared, exact)
    smoothing = dict(min_cutoff=min_cutoff, beta=beta) if smooth else None
    tracks: list[_Track] = []
    frame_size = None  # (H, W) of the frames the tracks were followed in
    # a capture the caller moved on (set(CAP_PROP_POS_FRAMES), frames read): its frames keep their indices
    start = int(_capture_float(capture, cv2.CAP_PROP_POS_FRAMES)) if _capture_float(
        capture, cv2.CAP_PROP_POS_FRAMES) > 0 else 0  # NaN (a custom capture's) fails the test too
    index, t, thumb = start, -math.inf, None
    shown = (start - 1) / fps if start else None  # shown: the capture's time of the last frame decoded
    read, skipped, failing, since = 0, [], [], 0.0  # failing: what the decoder said on each failed read since
    delay, damaged = 0.0, False  # damaged: the decoder reported damage since the last time jump
    try:
        while True:
            said = []
            with decoder_warnings(f"{name} frame {index}", notes=said):
                ok, frame = capture.read()
            if not ok:  # a damaged frame is skipped: the video ends at its declared count (or past saving)
                since = since if failing else time.monotonic()
                failing.append(said)
                if len(failing) < declared - index and (len(failing) < MAX_BAD_FRAMES
                                                        or time.monotonic() - since < MAX_FAILING_SECONDS):
                    continue
                break
            if frame is None and not failing:  # a custom capture's read() said True but gave no image
                warnings.warn(f"{name} frame {index}: read() gave no image (None); skipped", stacklevel=2)
                skipped.append(index)
                index += 1
                continue
            now = _capture_time(capture) - delay
            if index == 0 and not read and not failing and not said and 0 < now <= DECODER_DELAY_FRAMES / fps:
                delay, now = now, 0.0  # the first frame shown late is the decoder's reorder delay
            damaged = damaged or bool(failing or said)
            late = _late_frame(now, shown, fps, skipped)
            if late is not None:  # a lost frame shown late (after a damaged reference): it keeps its index
                skipped.remove(late)
                warnings.warn(f"{name} frame {late}: shown late, after frame {index - 1} (damaged data before it)",
                              stacklevel=2)
            elif not failing and damaged and (lost := _gap_frames(now, shown, fps)):
                # no read failed, but the times jump: the decoder dropped frames over the damage
                warnings.warn(f"{name} frame{'s' if lost > 1 else ''} {_ranges(list(range(index, index + lost)))}: "
                              f"lost by the decoder after damaged data (its time jumps from {shown:.3f} s to "
                              f"{now:.3f} s), skipped", stacklevel=2)
                skipped += list(range(index, index + lost))
                index, damaged = index + lost, False
            if failing:  # good frames came after them: the frames they lost were skipped
                lost = _frames_lost(now, shown, fps, len(failing))
                notes = [note for notes in failing for note in notes]
                if lost:
                    warnings.warn(_skipped_note(name, list(range(index, index + lost)), notes), stacklevel=2)
                elif notes:  # a read failed without losing its frame: what the decoder said is still said
                    warnings.warn(_skipped_note(name, [index], notes, lost=False), stacklevel=2)
                skipped += list(range(index, index + lost))
                index, failing = index + lost, []
            at = index if late is None else late
            shown = shown if late is not None else now
            if said:
                warnings.warn(f"{said[0]} (damaged data: the frame was decoded with the damage patched over, so its "
                              "keypoints may be wrong, as may those of the frames after it that are decoded from it)",
                              stacklevel=2)
            read += 1
            t = _frame_time(now, index, fps, t) if late is None else now
            rgb = _frame_rgb(frame, name, at)
            if rgb.shape[:2] != frame_size:  # a custom capture's frame of another size: faces found afresh, not
                tracks, thumb, frame_size = [], None, rgb.shape[:2]  # followed in the old frame's pixels
            timings = {"detection": 0.0, "preprocess": 0.0, "model": 0.0, "postprocess": 0.0}
            if predictor.framing == "resize":  # a whole-photo model: every frame is its one face
                whole = predictor(rgb)
                tracks = [_Track(whole[0].keypoints, whole[0].box, 1.0, tracks[0].smoother if tracks else (
                    OneEuroFilter(**smoothing) if smoothing is not None else None))]
                timings = whole.timings
            else:  # a scene cut is looked for only where there are tracks to drop
                cut, thumb = _scene_cut(rgb, thumb)
                tracks = _track(predictor, [] if cut else tracks, rgb, at % redetect_every == 0, smoothing, timings)
            yield _result(predictor, tracks, rgb.shape[:2], at, t, timings, f"{name}#frame={at}")
            index += late is None
        # an estimated count is met where the last frame's time reaches it; an MP4's sample count where
        # it reaches the container's duration, which an edit list (a trim) may end first
        unread = declared - index if failing and len(failing) < declared - index else 0
        reached_end = declared > 0 and t >= (declared - 2) / fps and not exact
        if packets and suffix not in EXACT_COUNT_SUFFIXES and read and math.isfinite(facts.video_duration):
            after = round((facts.video_duration - t) * fps) - 1  # frames that fit after the last one read
            if after > 1:  # a truncated file's packets end early: the stream's own duration says so
                declared, exact = max(declared, index + after), False
        if Path(name).suffix.lower() in EDIT_LIST_SUFFIXES and read and declared > index and probed and not skipped:
            reached_end = t + 1.5 / fps >= facts.duration
        shortfall = frames_missing(f"{name} (read from frame {start})" if start else name, declared - start, read,
                                   skipped, exact, reached_end, unread, no_frames=facts.empty)
        if not read and not skipped and 0 < declared <= start:  # a capture read to its end before: nothing is missing
            shortfall = None
            warnings.warn(f"{name}: the capture is at its end (frame {start} of {declared}): nothing left to read; "
                          "open the video again, or set(cv2.CAP_PROP_POS_FRAMES, 0), to read it from the start",
                          stacklevel=2)
        if shortfall:
            warnings.warn(IncompleteVideoWarning(shortfall), stacklevel=2)
    finally:
        if isinstance(source, (str, Path)):
            capture.release()


def _capture_float(capture, prop: int) -> float:
    """A capture property as a number; NaN where the capture gives none (or a custom one gives no number)."""
    try:
        return float(capture.get(prop))
    except (TypeError, ValueError, cv2.error):
        return math.nan


def _declared_frames(capture) -> int:
    """The capture's frame count; 0 where it gives none (a camera's -1, a custom capture's NaN)."""
    count = _capture_float(capture, cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if math.isfinite(count) and count > 0 else 0


def _skipped_note(name: str, indices: list[int], notes: list[str], lost: bool = True) -> str:
    said = "; ".join(note.split(": the image decoder warned: ", 1)[-1] for note in notes)
    said = f" (the decoder said: {said[:300]})" if said else ""
    if not lost:
        return f"{name} frame {indices[0]}: a read failed before it{said}, but no frame was lost"
    return f"{name} frame{'s' if len(indices) > 1 else ''} {_ranges(indices)}: could not be decoded, skipped{said}"


def _capture_time(capture) -> float:
    """Seconds at which the capture's last frame is shown; NaN where it gives none."""
    return _capture_float(capture, cv2.CAP_PROP_POS_MSEC) / 1000.0


def _frames_lost(now: float, shown: float | None, fps: float, failed: int) -> int:
    """How many frames ``failed`` reads in a row lost, from the times of the frame decoded after them
    (``now``) and of the last one before (``shown``; None: they were the first reads): a failed read
    may lose its frame (MJPG AVI) or none (FFmpeg's "partial file" of an MP4, whose next read gives
    that frame). Each failed read counts as one frame where the capture gives no usable times (the
    capture's frame position counts frames decoded, not frames passed, so it cannot tell)."""
    before = -1.0 / fps if shown is None else shown
    if not (math.isfinite(now) and now > 0 and now > before):
        return failed
    return min(failed, max(0, round((now - before) * fps) - 1))


@dataclass
class _StreamFacts:
    """What FFmpeg says of a video file's (first, non-cover-art) video stream: its count of frames
    (packets; 0 where it gives none), the container's duration (seconds, edit lists applied) and the
    video stream's own (its DURATION tag in MKV/WebM; the container's, less the stream's start, in a
    file with no other stream; NaN where it says none). ``empty``: FFmpeg read the video stream to
    its end and found no frame in it (a valid file: audio only after a cut, say), not damage."""

    frames: int = 0
    duration: float = math.nan
    video_duration: float = math.nan
    empty: bool = False


def _stream_facts(path: str) -> _StreamFacts:
    """Probe a video file once with FFmpeg (imageio-ffmpeg's binary), reading its video stream's
    packets without decoding them. OpenCV's frame count is the container's: an estimate from the
    duration of its longest stream (audio included) x rate in MKV, WebM, MPEG-TS and FLV, and index
    entries (empty "drop" chunks included) in a variable-rate AVI; the packets are the stream's own
    frames. OpenCV gives no duration, and an MP4's packets are its track's samples, of which an edit
    list (a trim made with ffmpeg -c copy) may show fewer. No ffmpeg, or no answer: no facts."""
    import subprocess

    import imageio_ffmpeg

    try:
        said = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", f"file:{path}",
                               "-map", "0:V:0", "-c", "copy", "-f", "null", "-"],
                              capture_output=True, timeout=120).stderr.decode("utf-8", "replace")
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return _StreamFacts()
    header = re.split(r"Stream mapping:|Output #0", said, maxsplit=1)[0]  # the input's, not the copy's
    duration = _seconds(re.search(r"Duration: (\d+:\d\d:\d\d(?:\.\d+)?)", header))
    streams = re.split(r"\n\s*Stream #0:", header)[1:]
    video = next((s for s in streams if ": Video:" in s.split("\n", 1)[0]
                  and "attached pic" not in s.split("\n", 1)[0]), "")
    own = _seconds(re.search(r"\n\s*DURATION\s*: (\d+:\d\d:\d\d(?:\.\d+)?)", video))
    start = re.search(r", start (\d+(?:\.\d+)?)", video.split("\n", 1)[0])
    if math.isnan(own) and len(streams) == 1:
        own = duration
    # both end where the stream's time stamps end: a stream starting at 1.6 s (an MKV remuxed from a
    # transport stream with its times kept) lasts that much less, or its frames were counted as missing
    own -= float(start[1]) if start else 0.0
    counts = re.findall(r"frame=\s*(\d+)", said)  # the progress line's last count is the whole stream's
    frames = int(counts[-1]) if counts else 0
    return _StreamFacts(frames, duration, own, empty=bool(video) and bool(counts) and frames == 0)


def _seconds(found) -> float:
    """A regex match of "H:MM:SS.ss" -> seconds; None -> NaN."""
    if not found:
        return math.nan
    hours, minutes, seconds = found[1].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _gap_frames(now: float, shown: float | None, fps: float) -> int:
    """How many frames fit between the frame shown at ``shown`` and the one at ``now`` (seconds), when
    they are over 1.5 frame spacings apart; 0 when they are not (or a time is missing). After damage
    the decoder may drop frames without a failed read: only the times tell (a jump with no damage
    reported is a variable frame rate's)."""
    if shown is None or not (math.isfinite(now) and math.isfinite(shown)) or now - shown <= 1.5 / fps:
        return 0
    return round((now - shown) * fps) - 1


def _late_frame(now: float, shown: float | None, fps: float, skipped: list[int]) -> int | None:
    """The index of a skipped frame that is shown late (its time ``now`` is before the last frame's,
    ``shown``: a decoder given damaged references may show frames out of order), else None."""
    if shown is None or not (math.isfinite(now) and now < shown):
        return None
    own = round(now * fps)
    return own if own in skipped else None


def _ranges(indices: list[int], most: int = 20) -> str:
    """[4, 7, 8, 9] -> '4, 7-9' (at most ``most`` runs, then '...')."""
    runs = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most])
    return text + (", ..." if len(runs) > most else "")


def frames_missing(name: str, declared: int, read: int, skipped: list[int], exact: bool,
                   reached_end: bool = False, unread: int = 0, no_frames: bool = False) -> str | None:
    """What is missing from a video of ``declared`` frames of which ``read`` were decoded and
    ``skipped`` (indices) could not be, in one line naming it; None when it is whole. An exact count
    (``EXACT_COUNT_SUFFIXES``) must be met; an estimated one may be 1 frame + 1% over; either is met
    by a video whose last frame reaches its duration (``reached_end``: a variable rate, an edit
    list). ``unread``: reading gave up that many frames before the declared end (``MAX_BAD_FRAMES``).
    ``no_frames``: the file's video stream holds none (``_StreamFacts.empty``), which is no damage."""
    if read == 0 and no_frames:
        return f"{name}: its video stream holds no frames (FFmpeg finds none in it): there is nothing to predict"
    if read == 0:
        return f"{name}: no frame could be decoded (the file is truncated or damaged)"
    missing = declared - read - len(skipped)  # after the last frame decoded
    declared = max(declared, read + len(skipped))  # a damaged container's count may lack the lost frames
    short = missing > (0 if exact else 1 + declared // 100) and not reached_end
    if not skipped and not short:
        return None
    said = []
    if skipped:
        said.append(f"frame{'s' if len(skipped) > 1 else ''} {_ranges(skipped)} could not be decoded and "
                    f"{'were' if len(skipped) > 1 else 'was'} skipped")
    if short and unread:
        said.append(f"the last {missing} were not read (reading stopped after {MAX_BAD_FRAMES} or more frames in "
                    f"a row could not be decoded for {MAX_FAILING_SECONDS:g} s)")
    elif short:
        last = f"the last {missing} are" if missing > 1 else "the last is"
        said.append(f"{last} missing (the file is truncated or damaged"
                    f"{'' if exact else f'; its count of {declared} is an estimate from its duration'})")
    return f"{name}: only {read} of its {declared} frames could be decoded: {'; '.join(said)}"


def _frame_time(t: float, index: int, fps: float, previous: float) -> float:
    """Seconds at which the frame just read is shown: the capture's time ``t`` (a variable-rate
    video's frames are not index / fps apart); index / fps where it gives none (a custom capture's 0
    or NaN), and never at or before the previous frame's. A time that repeats the previous frame's
    (or goes back) puts the frame half a frame after it: a full frame would take the next frame's
    own time, which would then be pushed too, and every later one."""
    given = math.isfinite(t) and (t > 0 or index == 0)
    if given and t <= previous:
        return previous + 0.5 / fps
    if not given:
        t = index / fps
    return t if t > previous else previous + 1.0 / fps


def _box_thumb(rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """(16, 16) grey thumbnail of what ``box`` holds (its part inside the image); None where that is
    under 4 pixels a side."""
    h, w = rgb.shape[:2]
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    small = cv2.resize(rgb[y1:y2, x1:x2], (16, 16), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32).mean(-1)


def _face_changed(before: np.ndarray | None, now: np.ndarray | None) -> bool:
    """Whether a followed face's box holds something else than on the previous frame (``FACE_GONE``);
    a box that leaves no thumbnail to compare is a change too."""
    if before is None or now is None:
        return True
    return float(np.abs(now - before).mean()) > FACE_GONE


def _scene_cut(rgb: np.ndarray, previous: np.ndarray | None) -> tuple[bool, np.ndarray]:
    """Whether ``rgb`` starts a new shot (``SCENE_CUT``), and its thumbnail for the next frame."""
    thumb = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_AREA)
    thumb = thumb.astype(np.float32)
    return previous is not None and float(np.abs(thumb - previous).mean()) > SCENE_CUT, thumb


def _frame_rgb(frame, name: str, index: int) -> np.ndarray:
    """A capture's BGR frame -> (H, W, 3) RGB uint8; a frame of another kind (a custom capture's float
    or empty array) is a ValueError naming it, not an OpenCV assertion deep in the face search.
    A custom capture's BGRA frame is blended over white, as an image is; OpenCV's own capture gives
    three channels, its FFmpeg decoding having dropped a video's alpha (README says so)."""
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"{name} frame {index}: read() gave {type(frame).__name__}, not a numpy image")
    try:
        return to_rgb(frame, color="bgr")[0]
    except ValueError as err:
        raise ValueError(f"{name} frame {index}: {err}") from None


def _track(predictor, tracks: list[_Track], rgb: np.ndarray, redetect: bool, smoothing: dict | None,
           timings: dict) -> list[_Track]:
    """One frame of tracking: follow the tracks, then run the detector if asked or if none is left.
    Schemas whose keypoints give no frame (nose1) cannot be followed: the detector runs every frame.
    After a scene cut the caller gives no tracks: a face of the new shot starts afresh, its own
    smoothing included, whatever its place."""
    previous = tracks
    if not predictor.alignable:
        return _detect(predictor, rgb, [], previous, smoothing, timings)
    if tracks:
        tracks, changed = _follow(predictor, rgb, tracks, timings)
        redetect = redetect or changed
    if not tracks or redetect:
        lost = [t for t in previous if all(t is not kept for kept in tracks)]
        tracks = _detect(predictor, rgb, tracks, lost, smoothing, timings)
    return tracks


def _result(predictor, tracks: list[_Track], image_size, index: int, t: float, timings: dict,
            source: str) -> FrameResult:
    faces = []
    for track in tracks:
        points = track.keypoints
        if track.smoother is not None:
            points = track.smoother.filter(points, t, scale=float(track.box[2] - track.box[0]))
        faces.append(VideoFace(box=track.box.copy(), box_score=track.box_score, keypoints=points, scores=None,
                               schema=predictor.schema, tracked=not track.detected))
    return FrameResult(image_size=tuple(image_size), faces=faces, schema=predictor.schema, timings=timings,
                       source=source, frame=index, time_s=t)


def keypoint_jitter(results: list[Result]) -> float:
    """Mean frame-to-frame keypoint motion (pixels) over consecutive frames that both hold exactly
    one face: on a still face, this is the jitter. NaN when no such pair of frames exists."""
    steps = [np.linalg.norm(b.faces[0].keypoints - a.faces[0].keypoints, axis=-1).mean()
             for a, b in zip(results, results[1:]) if len(a) == 1 and len(b) == 1]
    return float(np.mean(steps)) if steps else float("nan")
