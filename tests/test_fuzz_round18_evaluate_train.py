"""Round 18, evaluation, comparison and training (auditors' /tmp/r18 newdata 3, 4, 5, 7, 8; newinfer 3;
api 11, 12): each test names the item it keeps fixed. Tiny hand-made runs, data and configs."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from facekeypoints.data.dataset import DataFormatError
from facekeypoints.data.pipeline import DataConfig, load_parts
from facekeypoints.evaluate.compare import compare_runs
from facekeypoints.evaluate.metrics import ced, mae, mean_error, nme, per_keypoint_rmse, rmse, summarize
from facekeypoints.train import loop
from facekeypoints.train.config import load_config
from fakes import ytf68_csv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_train  # noqa: E402

HEADER = "epoch,minutes,lr,train_loss,val_loss,val_rmse,val_mae"
ROWS = ["1,0.1,0.01,0.5,0.4,5.0,4.0", "2,0.2,0.01,0.3,0.2,3.0,2.0"]
KAGGLE = {"config": {"model": {"name": "fcnn"}, "data": {"schema": "kaggle15", "frame": "none"},
                     "preprocess": {"size": 96}}}


def make_run(folder: Path, config=KAGGLE) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("\n".join([HEADER, *ROWS]) + "\n")
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


# ---- newdata 7: an unknown schema or pixel space is not a difference ---------------------------------
def test_newdata7_compare_does_not_call_an_unknown_schema_a_difference(tmp_path):
    known, unknown = make_run(tmp_path / "b"), make_run(tmp_path / "a", config=None)
    table = compare_runs([str(unknown), str(known)]).table
    assert "differ" not in table, table
    assert "warning: the keypoint schema is unknown for a" in table and "pixel space is unknown for a" in table, table


# ---- newdata 8: one folder that is not a run is named, the others compared --------------------------
def test_newdata8_compare_names_each_bad_folder_and_compares_the_rest(tmp_path):
    good, other = make_run(tmp_path / "good"), make_run(tmp_path / "other")
    (tmp_path / "plain").mkdir()
    damaged = make_run(tmp_path / "damaged")
    (damaged / "metrics.csv").write_text("foo,bar\n1,2\n")
    result = compare_runs([str(tmp_path / "plain"), str(good), str(damaged), str(other)])
    rows = [line.split()[0] for line in result.table.splitlines()[2:]]
    assert rows == ["good", "other"], result.table
    assert result.skipped == [f"{tmp_path / 'plain'}: no metrics.csv; is this a facekeypoints run directory?",
                              f"{damaged / 'metrics.csv'}: no 'epoch' column (columns: 'foo', 'bar'); is it the "
                              "run's metrics.csv?"], result.skipped
    with pytest.raises(FileNotFoundError, match="plain: no metrics.csv"):  # nothing readable: the error itself
        compare_runs([str(tmp_path / "plain")])
    with pytest.raises(ValueError, match=r"none of the 2 runs can be read: .*plain: no metrics.csv.*no 'epoch'"):
        compare_runs([str(tmp_path / "plain"), str(damaged)])


# ---- newinfer 3: a name too long for the file system ---------------------------------------------------
def test_newinfer3_compare_names_a_too_long_name(tmp_path):
    long = str(tmp_path / ("x" * 300))
    with pytest.raises(ValueError, match=r"x{300}: the name .* is 300 bytes long"):
        compare_runs([long])


# ---- api 11: ced without usable rows, negative NMEs ---------------------------------------------------
def test_api11_ced_of_no_rows_is_nan_and_a_negative_nme_is_refused():
    t, frac, auc = ced(np.array([np.nan, np.nan]))
    assert np.isnan(auc) and np.isnan(frac).all() and len(t) == 101
    assert np.isnan(ced(np.array([]))[2])
    with pytest.raises(ValueError, match=r"nme_per_row: 1 values are negative \(e.g. -0.5\)"):
        ced([-0.5, 0.01])
    assert ced([0.0, 0.2])[2] == pytest.approx(0.5)


# ---- api 12: a point is labelled only when both coordinates are -----------------------------------------
def test_api12_a_half_labelled_point_is_unlabelled_for_every_metric():
    gt = np.array([[[10.0, 10.0], [20.0, np.nan], [30.0, 40.0]]])
    pred = gt + 1
    pred[0, 1] = (50.0, 50.0)
    whole = gt.copy()
    whole[0, 1] = np.nan
    assert rmse(pred, gt) == rmse(pred, whole) == 1.0
    assert mae(pred, gt) == mae(pred, whole) == 1.0
    assert mean_error(pred, gt) == mean_error(pred, whole) == (1.0, 1.0)
    np.testing.assert_array_equal(per_keypoint_rmse(pred, gt), per_keypoint_rmse(pred, whole))
    pred_nan = pred.copy()
    pred_nan[0, 1] = np.nan  # no prediction at an unlabelled point is no error
    assert rmse(pred_nan, gt) == 1.0 and mean_error(pred_nan, gt) == (1.0, 1.0)
    gt15, pred15 = np.full((1, 15, 2), np.nan), np.full((1, 15, 2), 5.0)
    gt15[0, :3] = [[30.0, 40.0], [60.0, 40.0], [45.0, 60.0]]
    half = gt15.copy()
    half[0, 5] = (90.0, np.nan)  # would stretch the bounding box and count as a labelled coordinate
    np.testing.assert_array_equal(nme(pred15, half, "kaggle15"), nme(pred15, gt15, "kaggle15"))
    assert summarize(pred15, half, "kaggle15")["labelled_coordinates"] == 6


def test_api12_real_data_has_no_half_labelled_points():
    from facekeypoints.data import read

    files = [ROOT.parent / "shared" / "data" / "fkd15-ytf" / "training.zip",
             ROOT.parent / "shared" / "data" / "ytf68" / "train.csv"]
    files = [f for f in files if f.is_file()]
    if not files:
        pytest.skip("../shared/data is absent")
    for f in files:
        k = read(f, load_images=False).keypoints
        assert not (np.isnan(k[..., 0]) != np.isnan(k[..., 1])).any(), f


# ---- newdata 4: ranks whose pretrained weights files are the same bytes at other paths ------------------
def _ranks_settings(tmp_path, pretrained) -> SimpleNamespace:
    cfg = load_config(None, ["model.name=fcnn", f"model.pretrained={pretrained}"])
    return SimpleNamespace(world=2, cfg=cfg, train_x=np.zeros(3), val_x=np.zeros(2),
                           data_report={"digest": {"train": 1, "val": 2}})


def test_newdata4_ranks_compare_the_pretrained_weights_by_content(tmp_path, monkeypatch):
    for folder, content in (("wa", b"weights"), ("wb", b"weights"), ("wc", b"others!")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "r50.pth").write_bytes(content)
    gathered = {}

    def gather(everyone, mine):  # rank 0 gives its settings first, then this rank's are compared with them
        gathered.setdefault("rank0", mine)
        everyone[:] = [gathered["rank0"], mine]

    monkeypatch.setattr(loop.dist, "all_gather_object", gather)
    loop._check_ranks_agree(_ranks_settings(tmp_path, tmp_path / "wa" / "r50.pth"))
    loop._check_ranks_agree(_ranks_settings(tmp_path, tmp_path / "wb" / "r50.pth"))  # the same bytes: agrees
    with pytest.raises(ValueError, match=r"rank 1 would train differently from rank 0 \(model.pretrained's sha256 "
                                         "differs\\)"):
        loop._check_ranks_agree(_ranks_settings(tmp_path, tmp_path / "wc" / "r50.pth"))


# ---- newdata 5: a missing photo of labels read alone names the labels file and row ----------------------
@pytest.mark.parametrize("frame", ["kaggle", "resize"])
def test_newdata5_split_val_names_the_csv_and_row_of_a_missing_photo(tmp_path, frame):
    csv = ytf68_csv(tmp_path, rows=8)
    d = DataConfig(train=str(csv), schema="ibug68", split=[0.5, 0.5], frame=frame)
    face = load_parts(d, 32, only=("val",))[0]["val"].ids[0]  # a validation face: its photo is read
    photo = tmp_path / "images" / face
    photo.unlink()
    with pytest.raises(DataFormatError) as err:
        load_parts(d, 32, only=("val",))
    row = int(face.removeprefix("train/face").removesuffix(".png")) + 1
    assert str(err.value) == f"{csv}, row {row}: image file not found: {photo}"


# ---- newdata 3: bench_train's run folders are named without a digest; the digest is checked ----------
def _fake_fit(trained):
    def fit(cfg, **_):
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.csv").write_text("epoch,minutes,val_rmse\n1,0.1,2.0\n")
        (out / "config.json").write_text(json.dumps({"config": cfg.to_dict()}))
        trained.append(out.name)
        return {"stop_reason": "epochs", "best_val_rmse": cfg.train.lr, "best_epoch": 1, "minutes": 0.1}
    return fit


def test_newdata3_bench_train_reuses_its_folders_and_refuses_another_recipe(tiny_csv, tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(bench_train, "ROOT", tmp_path)
    monkeypatch.setattr(loop, "fit", _fake_fit(trained))
    (tmp_path / "configs").mkdir()
    text = "name: a\ndata: {{train: {csv}, persons: null, complete_labels: null}}\ntrain: {{lr: {lr}}}\n"
    (tmp_path / "configs" / "a.yaml").write_text(text.format(csv=tiny_csv, lr=0.001))

    def bench(minutes=1.0):
        return bench_train._one_run("configs/a.yaml", "base", [], 0, minutes, False)["summary"]["best_val_rmse"]

    assert bench() == 0.001 and trained == ["bench_a_base_s0"]
    summary = json.loads((tmp_path / "runs" / "bench_a_base_s0" / "summary.json").read_text())
    assert "config_file" not in summary and len(summary["config_digest"]) == 12  # the content's, not the path's
    assert bench() == 0.001 and len(trained) == 1  # read back
    with pytest.raises(SystemExit, match=r"runs/bench_a_base_s0: holds a run of other settings "
                                         r"\(train.time_limit_min: 1.0 -> 2.0\); move that folder away, or give "
                                         "these settings another --variant name"):
        bench(minutes=2.0)
    (tmp_path / "configs" / "a.yaml").write_text(text.format(csv=tiny_csv, lr=0.002))  # edited
    with pytest.raises(SystemExit, match=r"\(train.lr: 0.001 -> 0.002\)"):
        bench()
    done = tmp_path / "runs" / "bench_a_base_s0" / "summary.json"
    done.write_text(json.dumps({k: v for k, v in summary.items() if k != "config_digest"}))  # an older version's
    assert bench() == 0.001 and len(trained) == 1  # reused as before
    done.unlink()  # a partial run (last.pt, config.json) of the first recipe: refused too, not resumed
    (done.parent / "last.pt").write_bytes(b"weights")
    with pytest.raises(SystemExit, match=r"holds a run of other settings \(train.lr: 0.001 -> 0.002\)"):
        bench()


def test_newdata3_bench_train_refuses_two_configs_of_one_name(tiny_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_train, "ROOT", tmp_path)
    (tmp_path / "configs" / "other").mkdir(parents=True)
    text = "name: a\ndata: {{train: {csv}, persons: null, complete_labels: null}}\n".format(csv=tiny_csv)
    for path in ("configs/a.yaml", "configs/other/a.yaml"):
        (tmp_path / path).write_text(text)
    monkeypatch.setattr(sys, "argv", ["bench_train.py", "--configs", "configs/a.yaml", "configs/other/a.yaml"])
    with pytest.raises(SystemExit):
        bench_train.main()
    err = capsys.readouterr().err
    assert "--configs configs/a.yaml and configs/other/a.yaml are both named 'a'" in err, err
