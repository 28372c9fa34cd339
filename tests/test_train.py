"""The training engine end to end on a tiny generated Kaggle-format set (seconds, CPU)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facekeypoints.data import write_kaggle_csv
from facekeypoints.models.checkpoint import CheckpointError, load_checkpoint, load_model
from facekeypoints.train.config import load_config
from facekeypoints.train.loop import fit
from fakes import make_faces, overrides

TINY = ["model.name=keypoint_net", "train.epochs=3", "train.batch_size=8", "train.lr=0.003",
        "train.num_threads=1", "data.split=[0.75, 0.25]"]
# the command line starts from the default recipe, whose sidecar files describe fkd15-ytf, not a tiny set
CLI_TINY = TINY + ["data.persons=null", "data.complete_labels=null"]


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    return write_kaggle_csv(make_faces(), tmp_path / "training.csv")


def _cfg(csv, out, extra=()):
    return load_config(None, [f"data.train={csv}", f"out_dir={out}", *overrides(TINY, extra)])


def test_fit_writes_run_directory_and_learns(tiny_csv, tmp_path):
    summary = fit(_cfg(tiny_csv, tmp_path / "run", ["train.epochs=6"]), progress=False)
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt", "metrics.csv", "config.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir()), "TensorBoard events expected"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,minutes,lr,train_loss,val_loss,val_rmse") and len(rows) == 7
    history = [dict(zip(rows[0].split(","), r.split(","))) for r in rows[1:]]
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    assert summary["best_val_rmse"] == min(float(h["val_rmse"]) for h in history)
    ckpt = load_checkpoint(run / "best.pt")
    card = ckpt.card
    assert card.schema.name == "kaggle15" and card.preprocess.size == 96 and card.model == "keypoint_net"
    assert card.framing == "kaggle" and card.trained_on.train == str(tiny_csv)
    assert card.metrics["val_rmse"] == summary["best_val_rmse"] and card.metrics["epoch"] == summary["best_epoch"]
    assert ckpt.training["config"]["model"]["name"] == "keypoint_net"
    model, _ = load_model(run / "best.pt")
    assert model(torch.zeros(1, 1, 96, 96)).shape == (1, 15, 2)


def test_same_seed_same_weights(tiny_csv, tmp_path):
    fit(_cfg(tiny_csv, tmp_path / "a", ["train.epochs=2"]), progress=False)
    fit(_cfg(tiny_csv, tmp_path / "b", ["train.epochs=2"]), progress=False)
    a, b = (load_checkpoint(tmp_path / r / "last.pt").state_dict for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("recipe", [[], ["train.ema=0.9", "train.label_offset=true"]], ids=["plain", "ema+offset"])
def test_interrupt_then_resume_equals_uninterrupted_run(tiny_csv, tmp_path, monkeypatch, recipe):
    extra = ["train.epochs=3", "train.scheduler=step", "train.step_size=1", *recipe]
    fit(_cfg(tiny_csv, tmp_path / "full", extra), progress=False)

    import facekeypoints.train.loop as loop

    real_augment, calls = loop.augment_batch, {"n": 0}

    def augment_then_interrupt(*args, **kwargs):  # a Ctrl-C arriving in the middle of epoch 2
        calls["n"] += 1
        if calls["n"] == 5:
            signal.raise_signal(signal.SIGINT)
        return real_augment(*args, **kwargs)

    monkeypatch.setattr(loop, "augment_batch", augment_then_interrupt)
    summary = fit(_cfg(tiny_csv, tmp_path / "cut", extra), progress=False)
    assert summary["stop_reason"] == "interrupted" and (summary["epoch"], summary["step"]) == (1, 2)
    monkeypatch.setattr(loop, "augment_batch", real_augment)
    fit(_cfg(tiny_csv, tmp_path / "cut", extra), resume=True, progress=False)
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    cut = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(full.state_dict[k], cut.state_dict[k]) for k in full.state_dict)
    assert [h["val_rmse"] for h in full.training["train_state"]["history"]] == \
        [h["val_rmse"] for h in cut.training["train_state"]["history"]]
    assert full.card.label_offset == cut.card.label_offset
    if recipe:  # the averaged weights are saved as the model, the optimiser's own beside them for resuming
        raw = full.training["raw_weights"]
        assert all(torch.equal(raw[k], cut.training["raw_weights"][k]) for k in raw)
        assert any(not torch.equal(raw[k], full.state_dict[k]) for k in raw if raw[k].is_floating_point())


def test_resume_refuses_a_checkpoint_of_another_model(tiny_csv, tmp_path):
    fit(_cfg(tiny_csv, tmp_path / "run", ["train.epochs=1"]), progress=False)
    with pytest.raises(CheckpointError, match="keypoint_net.*simple_cnn|simple_cnn.*keypoint_net"):
        fit(_cfg(tiny_csv, tmp_path / "run", ["model.name=simple_cnn"]), resume=True, progress=False)


def test_checkpoint_is_not_executable_code(tmp_path):
    evil = tmp_path / "evil.pt"

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "facekeypoints-checkpoint/1", "x": Boom()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(evil)


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "facekeypoints.cli", *args], capture_output=True, text=True, **kwargs)


def test_sigterm_saves_and_resume_completes(tiny_csv, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "facekeypoints.cli", "train", "--quiet", "--out", str(out),
           "--set", f"data.train={tiny_csv}", *sum((["--set", s] for s in overrides(CLI_TINY, ["train.epochs=200"])), [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.time() + 120
    while not (out / "metrics.csv").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    state = load_checkpoint(out / "last.pt").training["train_state"]
    assert 1 <= state["epoch"] < 200
    done = _cli("train", "--quiet", "--resume", "--out", str(out), "--set", f"data.train={tiny_csv}",
                *sum((["--set", s] for s in overrides(CLI_TINY, [f"train.epochs={state['epoch'] + 1}"])), []))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["epochs"] == state["epoch"] + 1


def test_two_process_data_parallel_training(tiny_csv, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = sum((["--set", s] for s in overrides(CLI_TINY, ["train.epochs=2", f"data.train={tiny_csv}"])), [])
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "facekeypoints.cli", "train", "--quiet", "--out", str(out), *sets],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count('"stop_reason"') == 1  # one summary, from rank 0
    summary = json.loads(run.stdout)
    assert summary["processes"] == 2 and summary["rank"] == 0 and summary["device"] == "cpu"
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.training["train_state"]["epoch"] == 2
    assert ckpt.training["config"]["train"]["batch_size"] == 8
    assert not any(k.startswith("module.") for k in ckpt.state_dict)  # saved unwrapped


def test_evaluate_cli_json_and_compare_report(tiny_csv, tmp_path):
    fit(_cfg(tiny_csv, tmp_path / "run", ["train.epochs=2"]), progress=False)
    res = _cli("evaluate", str(tiny_csv), "--model", str(tmp_path / "run" / "best.pt"), "--json")
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)
    for key in ("rmse", "mae", "nme", "fr_8", "fr_10", "auc_10", "per_keypoint_rmse"):
        assert key in metrics
    assert metrics["rows"] == 32
    res = _cli("compare", str(tmp_path / "run"), "--report", str(tmp_path / "report"))
    assert res.returncode == 0, res.stderr
    assert "RMSE" in res.stdout and "run" in res.stdout
    for name in ("curves.png", "table.json", "run_per_keypoint.png", "run_best_worst.png", "run_filters.png"):
        assert (tmp_path / "report" / name).is_file(), name
    page = (tmp_path / "report" / "index.html").read_text()
    for part in ("<table>", "curves.png", "run_per_keypoint.png", "run_best_worst.png", "run_filters.png", "id='run'"):
        assert part in page, part
    assert "http" not in page  # self-contained: nothing fetched from elsewhere


def test_compare_names_runs_by_folder_even_when_their_config_names_agree(tiny_csv, tmp_path):
    for folder in ("seed0", "seed1"):
        fit(_cfg(tiny_csv, tmp_path / folder, ["train.epochs=1", "name=same", f"train.seed={folder[-1]}"]), progress=False)
    res = _cli("compare", str(tmp_path / "seed0"), str(tmp_path / "seed1"))
    assert res.returncode == 0, res.stderr
    assert "seed0" in res.stdout and "seed1" in res.stdout and "same" not in res.stdout


def test_bad_config_value_is_a_clear_cli_error(tiny_csv, tmp_path):
    res = _cli("train", "--set", "train.epoch=3")
    assert res.returncode == 2 and "train.epochs" in res.stderr and "Traceback" not in res.stderr


def test_submit_cli_answers_every_lookup_row(tiny_csv, tmp_path):
    fit(_cfg(tiny_csv, tmp_path / "run", ["train.epochs=1"]), progress=False)
    faces = make_faces(n=3, seed=5)
    test_csv = tmp_path / "test.csv"
    lines = ["ImageId,Image"] + [f"{i + 1}," + " ".join(map(str, faces.images[i].ravel())) for i in range(3)]
    test_csv.write_text("\n".join(lines) + "\n")
    lookup = tmp_path / "IdLookupTable.csv"
    rows = [(1, 1, "nose_tip_x"), (2, 1, "nose_tip_y"), (3, 3, "left_eye_center_x")]
    lookup.write_text("RowId,ImageId,FeatureName,Location\n" + "".join(f"{r},{i},{f},\n" for r, i, f in rows))
    out = tmp_path / "submission.csv"
    res = _cli("submit", str(test_csv), "--lookup", str(lookup), "--model", str(tmp_path / "run" / "best.pt"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    got = out.read_text().splitlines()
    assert got[0] == "RowId,Location" and [int(r.split(",")[0]) for r in got[1:]] == [1, 2, 3]
    assert all(0 <= float(r.split(",")[1]) <= 95 for r in got[1:])
    assert "3 rows, model" in res.stdout and "best.pt" in res.stdout
