"""`facekeypoints bench` measures both backends, the frame pipeline and jitter, and writes JSON."""
from __future__ import annotations

import json

from facekeypoints.cli import main


def test_bench_reports_every_figure_for_both_backends(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "bench.json"
    code = main(["bench", "--random", "keypoint_net", "--threads", "1", "--batch", "8", "--repeats", "3",
                 "--jitter-frames", "6", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["backends"]) == {"torch", "onnx"}
    for figures in report["backends"].values():
        assert figures["ms_per_face_batch1"] > 0 and figures["faces_per_s_batch8"] > 0
        frame = figures["frame_640x480"]
        assert frame["faces"] == 1 and frame["frame_ms"] > 0 and frame["detection_ms"] > 0  # no timing order: load varies
    assert report["jitter"]["jitter_px_raw"] >= 0 and report["jitter"]["jitter_px_smoothed"] >= 0
    printed = capsys.readouterr().out
    assert "ms/face at batch 1" in printed and "640x480 frame" in printed and "jitter" in printed
    # the device is torch's (what --device chose), the processor is named apart: a GPU run said "cpu" before
    assert report["device"] == "cpu" and "logical cores visible" in report["cpu"]
    assert "torch on cpu; cpu " in printed
