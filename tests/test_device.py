"""Devices and precision: one resolver with clear errors; bf16 and channels_last training on the CPU."""
import pytest
import torch

from facekeypoints.cli import main
from facekeypoints.data import write_kaggle_csv
from facekeypoints.models import create_model, model_info
from facekeypoints.models.checkpoint import load_checkpoint
from facekeypoints.models.device import DeviceError, amp_dtype, resolve_device
from facekeypoints.train import loop
from facekeypoints.train.config import load_config
from facekeypoints.train.loop import fit
from fakes import make_faces, overrides

TINY = ["model.name=keypoint_net", "train.epochs=2", "train.batch_size=8", "train.lr=0.003", "train.num_threads=1",
        "data.split=[0.75, 0.25]"]


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    return write_kaggle_csv(make_faces(), tmp_path_factory.mktemp("data") / "training.csv")


def _cfg(csv, out, *extra):
    return load_config(None, [f"data.train={csv}", f"out_dir={out}", *overrides(TINY, extra)])


@pytest.fixture
def no_gpu(monkeypatch):
    import torch._dynamo  # noqa: F401  (loaded by the optimiser later; it wraps the real mps check, so load it first)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_is_the_cpu_without_a_gpu_and_cuda_when_there_is_one(no_gpu, monkeypatch):
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceError, match="there are 2 CUDA devices"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name, message", [
    ("cuda", "device 'cuda' was asked for, but .* here; use --device cpu"),
    ("cuda:0", "device 'cuda:0' was asked for"),
    ("mps", "sees no Apple GPU"),
    ("gpu", "device 'gpu' is not one of auto, cpu, cuda, cuda:N, mps"),
])
def test_a_device_that_is_not_there_is_a_clear_error(no_gpu, name, message):
    with pytest.raises(DeviceError, match=message):
        resolve_device(name)


def test_asking_for_cuda_without_one_is_a_one_line_cli_error(no_gpu, tmp_path, capsys):
    for command in (["train", "--set", "train.device=cuda", "--out", str(tmp_path / "r")],
                    ["predict", "x.jpg", "--device", "cuda"], ["evaluate", "--split", "val", "--device", "cuda"],
                    ["export", "-o", str(tmp_path / "m.onnx"), "--device", "cuda"], ["bench", "--device", "cuda"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("error: device 'cuda' was asked for") and err.count("\n") == 1, err


def test_float16_needs_a_gpu_and_unknown_precisions_are_refused():
    assert amp_dtype("bf16", "cpu") == torch.bfloat16 and amp_dtype("none", "cpu") is None
    with pytest.raises(DeviceError, match="fp16 needs a GPU"):
        amp_dtype("fp16", "cpu")
    with pytest.raises(DeviceError, match="'fp8' is not one of"):
        amp_dtype("fp8", "cpu")


def test_bf16_training_on_the_cpu_runs_and_differs_from_float32(tiny_csv, tmp_path):
    full = fit(_cfg(tiny_csv, tmp_path / "fp32"), progress=False)
    half = fit(_cfg(tiny_csv, tmp_path / "bf16", "train.amp=bf16"), progress=False)
    assert half["amp"] == "bf16" and half["device"] == "cpu" and 0 < half["best_val_rmse"] < 100
    a, b = (load_checkpoint(tmp_path / r / "last.pt").state_dict for r in ("fp32", "bf16"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # autocast really ran in bfloat16
    assert abs(half["best_val_rmse"] - full["best_val_rmse"]) < 0.25 * full["best_val_rmse"]


def test_the_loss_scaling_path_runs_and_resumes(tiny_csv, tmp_path, monkeypatch):
    """float16 with a GradScaler is what GPUs use; CPU autocast can run it too, so the path is tested here."""
    monkeypatch.setattr(loop, "amp_dtype", lambda amp, device: torch.float16)
    summary = fit(_cfg(tiny_csv, tmp_path / "fp16", "train.epochs=1"), progress=False)
    assert summary["stop_reason"] == "epochs"
    ckpt = load_checkpoint(tmp_path / "fp16" / "last.pt")
    assert ckpt.training["scaler"]["scale"] > 0
    resumed = fit(_cfg(tiny_csv, tmp_path / "fp16", "train.epochs=2"), resume=True, progress=False)
    assert resumed["epochs"] == 2


def test_channels_last_trains_to_the_same_weights_shape(tiny_csv, tmp_path):
    summary = fit(_cfg(tiny_csv, tmp_path / "nhwc", "train.channels_last=true", "train.epochs=1"), progress=False)
    assert summary["epochs"] == 1
    assert load_checkpoint(tmp_path / "nhwc" / "last.pt").card.model == "keypoint_net"


def test_standard_resnet_stem_shapes_and_cost():
    standard = create_model("resnet18", schema="kaggle15")
    backbone = standard.backbone
    assert backbone.conv1.kernel_size == (7, 7) and backbone.conv1.stride == (2, 2)
    x = torch.zeros(2, 1, 96, 96)
    stem = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    assert stem.shape == (2, 64, 24, 24)  # layer1 at a quarter of the input, as torchvision's ResNet
    assert standard(x).shape == (2, 15, 2)
    fine = create_model("resnet18", schema="kaggle15", stem_stride=2).backbone
    assert fine.maxpool(fine.relu(fine.bn1(fine.conv1(x)))).shape == (2, 64, 48, 48)
    cost = model_info("resnet18")["macs"]
    assert model_info("resnet18", input_size=96)["options"]["stem_stride"] == 4 and cost < 400e6
