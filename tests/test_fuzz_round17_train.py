"""Round 17, training commands (auditor's /tmp/r17/train):

2  torchrun ranks that would train another recipe (or other faces) are refused before the first step,
   naming the rank and the setting.
3  (changed in round 18, see test_fuzz_round18_evaluate_train.py) bench_train never answers with
   another recipe's result.
4  taking over a stale .training.lock is one claim: a lock whose flock is held is never taken over.
5  a damaged or foreign train_state in last.pt is refused naming the file and the field, before the
   data is read; an optimizer state of another shape names the file.
6  train-detector refuses resuming with another --batch-size.
7  a .training.lock that is a folder is one line, exit 2.
8  bench_train --variant splits only at top-level commas (not inside {...} or quotes).
9  train.teacher naming a folder says it is a folder.
"""
import fcntl
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facekeypoints.train import loop
from facekeypoints.train.folder_claim import LOCK, claim_folder, release_folder
from fakes import tiny_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_train  # noqa: E402


# ---- 2. ranks checked against each other -----------------------------------------------------------------
def test_ranks_that_train_another_recipe_are_refused_naming_rank_and_setting(tiny_csv, tmp_path):
    launcher = tmp_path / "launch.py"  # rank 1 is given another seed, as another machine's config might
    launcher.write_text("import os, sys\nfrom facekeypoints.cli import main\n"
                        "extra = ['--set', 'train.seed=7'] if os.environ['RANK'] == '1' else []\n"
                        "sys.exit(main(sys.argv[1:] + extra))\n")
    sets = sum((["--set", s] for s in [f"data.train={tiny_csv}", "model.name=fcnn", "train.epochs=1",
                                       "train.batch_size=8", "train.num_threads=1", "train.device=cpu",
                                       "data.split=[0.75, 0.25]", "data.persons=null",
                                       "data.complete_labels=null"]), [])
    out = tmp_path / "ddp"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(launcher), "train", "--quiet", "--out", str(out), *sets],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode != 0
    assert "rank 1 would train differently from rank 0 (train.seed 7, rank 0's 0)" in run.stderr, run.stderr[-3000:]
    assert not (out / "last.pt").exists() and not (out / LOCK).exists()


# ---- 3. bench_train: a run per config file and content -------------------------------------------------
# Round 18 changed this: run folders are named without a digest again, and a folder holding a run of other
# settings (an edited config, a second config of the same name) is refused instead of trained beside it:
# test_fuzz_round18_evaluate_train.py::test_newdata3_* keep that.


# ---- 4. one claim of a stale lock ------------------------------------------------------------------------
def test_a_stale_lock_being_taken_over_is_not_taken_over_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text("999999999\n")  # a dead run's pid, while another claim holds its flock
    taking_over = os.open(out / LOCK, os.O_RDONLY)
    fcntl.flock(taking_over, fcntl.LOCK_EX)
    try:
        with pytest.raises(ValueError, match="could not claim the folder"):
            claim_folder(out)
    finally:
        os.close(taking_over)
    lock, made = claim_folder(out)  # its flock gone: stale, taken over
    assert (out / LOCK).read_text() == f"{os.getpid()}\n"
    release_folder(lock, out, made)
    assert not [p for p in out.iterdir() if p.name.startswith(LOCK)]


def _claim(out, start, results):
    start.wait()
    try:
        claim_folder(Path(out))
        results.put("ok")
        start.wait()  # hold the claim until every process has tried
    except ValueError as err:
        results.put(str(err))
        start.wait()


def test_three_claims_of_one_stale_lock_give_one_run(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for trial in range(5):
        out = tmp_path / f"r{trial}"
        out.mkdir()
        (out / LOCK).write_text("999999999\n")
        start, results = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_claim, args=(out, start, results)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        answers = [results.get(timeout=5) for _ in procs]
        assert answers.count("ok") == 1, answers
        assert all("in use by another training (pid" in a for a in answers if a != "ok"), answers


# ---- 7. a lock that is a folder ----------------------------------------------------------------------------
def test_a_lock_that_is_a_folder_is_one_line_exit_2(tiny_csv, tmp_path, capsys):
    from facekeypoints.cli import main

    out = tmp_path / "run"
    (out / LOCK).mkdir(parents=True)
    code = main(["train", "--quiet", "--out", str(out), "--set", f"data.train={tiny_csv}", "--set", "model.name=fcnn",
                 "--set", "train.device=cpu", "--set", "data.persons=null", "--set", "data.complete_labels=null"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {out / LOCK}: is a folder, not a training lock; remove it\n"
    assert (out / LOCK).is_dir()


# ---- 5. a damaged train_state ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from facekeypoints.data import write_kaggle_csv
    from fakes import make_faces

    folder = tmp_path_factory.mktemp("r17")
    csv = write_kaggle_csv(make_faces(32), folder / "faces.csv")
    loop.fit(tiny_config(csv, folder / "base"), progress=False)
    return csv, folder / "base" / "last.pt"


def _resume_with(trained, tmp_path, monkeypatch, change):
    csv, last = trained
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    change(ckpt)
    out = tmp_path / "rz"
    out.mkdir()
    torch.save(ckpt, out / "last.pt")
    monkeypatch.setattr(loop, "load_parts", lambda *a, **k: pytest.fail("the data was read"))
    with pytest.raises(ValueError) as caught:
        loop.fit(tiny_config(csv, out, "train.epochs=3"), resume=True, progress=False)
    return str(caught.value)


@pytest.mark.parametrize("field, value, said", [
    ("foo", 1, "unknown key 'train_state.foo'"),
    ("epoch", "1", "train_state.epoch: expected int, got str '1'"),
    ("history", None, "train_state.history: expected list"),
    ("best", {"epoch": 1}, "train_state.best must be an epoch's row with epoch and val_rmse"),
    ("faces", [1, 2], "train_state.faces: expected dict"),
    ("epoch", -1, "train_state.epoch must be >= 0, got -1"),
    ("step", -5, "train_state.step must be >= 0, got -5"),
    ("history", [{"epoch": 1}], "train_state.history[0] must be an epoch's row"),
    ("loss_sum", "x", "train_state.loss_sum: expected float"),
])
def test_a_damaged_train_state_is_refused_naming_file_and_field(trained, tmp_path, monkeypatch, field, value, said):
    def change(ckpt):
        ckpt["train_state"][field] = value

    message = _resume_with(trained, tmp_path, monkeypatch, change)
    assert message.startswith(f"{tmp_path / 'rz' / 'last.pt'}: its training state is damaged"), message
    assert said in message, message


def test_an_optimizer_state_of_another_shape_names_the_file(trained, tmp_path, monkeypatch):
    csv, last = trained
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    ckpt["optimizer"]["param_groups"].append(dict(ckpt["optimizer"]["param_groups"][0]))
    out = tmp_path / "rz"
    out.mkdir()
    torch.save(ckpt, out / "last.pt")
    with pytest.raises(ValueError, match=rf"^{out / 'last.pt'}: its optimizer state does not fit this run \("):
        loop.fit(tiny_config(csv, out, "train.epochs=3"), resume=True, progress=False)


# ---- 6. train-detector --batch-size ------------------------------------------------------------------------
def test_train_detector_refuses_resuming_with_another_batch_size(tmp_path):
    from test_fuzz_round15_train import _train_detector

    out = tmp_path / "det"
    _train_detector(out, batch_size=2)
    with pytest.raises(ValueError, match=r"this run was started with --batch-size 2, now 8: .* give --batch-size 2"):
        _train_detector(out, batch_size=8)


# ---- 8. bench_train --variant ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, sets", [
    ("w:train.loss=wing,train.loss_params={w: 0.1, epsilon: 0.02}",
     ["train.loss=wing", "train.loss_params={w: 0.1, epsilon: 0.02}"]),
    ('n:name="a,b",train.lr=1', ['name="a,b"', "train.lr=1"]),
    ("n:name=bob's,train.lr=1", ["name=bob's", "train.lr=1"]),  # an apostrophe in a plain value opens no quote
    ("s:data.split=[0.5, 0.5],train.lr=1", ["data.split=[0.5, 0.5]", "train.lr=1"]),
])
def test_variant_splits_only_at_top_level_commas(text, sets):
    assert bench_train._variant(text) == (text.split(":")[0], sets)


# ---- 9. train.teacher naming a folder ----------------------------------------------------------------------
def test_a_teacher_that_is_a_folder_is_said_to_be_one(tmp_path):
    from facekeypoints.train.distill import check_teacher

    with pytest.raises(ValueError, match=rf"^train.teacher {tmp_path}: is a folder; give the .pt file in it$"):
        check_teacher(str(tmp_path))


def test_only_whole_per_rank_settings_are_left_out_of_the_rank_comparison():
    from facekeypoints.train.loop import _per_rank

    assert _per_rank("train.teacher") and _per_rank("reference.rmse") and _per_rank("data.train")
    assert not _per_rank("train.teacher_max_disagreement") and not _per_rank("names")


def test_a_lock_gone_between_link_and_look_means_claim_again_not_remove_it(tmp_path):
    from facekeypoints.train.folder_claim import LOCK, _replace_stale

    mine = tmp_path / f"{LOCK}.1"
    mine.write_text("1\n")
    assert _replace_stale(tmp_path / LOCK, mine, tmp_path) is False  # no lock there any more


def test_a_file_system_without_flock_still_claims_and_refuses_by_pid(tmp_path, monkeypatch):
    import errno
    import fcntl

    from facekeypoints.train.folder_claim import LOCK, claim_folder, release_folder

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    (tmp_path / LOCK).write_text("999999999\n")  # a dead process's lock: taken over
    lock, made = claim_folder(tmp_path)
    assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())
    release_folder(lock, tmp_path, made)
    assert not (tmp_path / LOCK).exists()
