"""Every registered model: forward, backward and output shape; registry errors; pretrained loading;
keypoint_net's budget, decoding convention and ONNX parity."""
from __future__ import annotations

import pytest
import torch

from facekeypoints.models import UnknownModelError, codecs, count_macs, create_model, list_models, model_info
from facekeypoints.models.heatmap import soft_argmax
from facekeypoints.schema import load_schema

BIG = {"resnet26", "resnet34", "resnet50", "resnet50_tl", "resnet50_aa", "densenet121_tl", "cnn7m"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _forward_backward(name: str, schema: str, size: int, backward: bool = True) -> None:
    torch.manual_seed(0)
    model = create_model(name, schema=schema, input_size=size)
    batch = 1 if name in BIG else 2
    with torch.set_grad_enabled(backward):
        out = model.train(backward)(torch.randn(batch, 1, size, size))
    k = load_schema(schema).num_keypoints
    assert out.shape == (batch, k, 2)
    assert torch.isfinite(out).all()
    assert (model.model_name, model.schema_name, model.input_size, model.in_channels) == (name, schema, size, 1)
    if not backward:
        return
    (out - 0.3).square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_kaggle15_96(name):
    _forward_backward(name, "kaggle15", 96)


@pytest.mark.parametrize("name", list_models())
def test_forward_ibug68_64(name):
    """Another schema and input size; the big models run forward only to keep the suite fast."""
    _forward_backward(name, "ibug68", 64, backward=name not in BIG)


def test_registry_lists_the_promised_models():
    expected = {"fcnn", "simple_cnn", "nose_cnn", "face_cnn", "cnn7m", "resnet18", "resnet26", "resnet34",
                "resnet50", "resnet50_tl", "densenet121_tl", "resnet50_aa", "keypoint_net", "keypoint_net_reg"}
    assert expected <= set(list_models())
    assert list_models("resnet5*") == ["resnet50", "resnet50_aa", "resnet50_tl"]


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownModelError, match=r"did you mean \[.*'resnet18'"):
        create_model("resnet81")
    with pytest.raises(ValueError, match="keypoint_net"):  # UnknownModelError is a ValueError (CLI prints it)
        create_model("keypoint_nte")


def test_typo_in_keyword_is_a_type_error_with_suggestion():
    with pytest.raises(TypeError, match="head_channels"):
        create_model("keypoint_net", head_channel=32)
    with pytest.raises(TypeError, match="stem_stride"):
        create_model("resnet18", stem_strid=2)


def test_scratch_models_refuse_pretrained():
    with pytest.raises(ValueError, match="from scratch"):
        create_model("resnet18", pretrained=True)


def test_fcnn_is_fixed_to_its_input_size_and_counts_as_seed_002():
    model = create_model("fcnn", input_size=96)
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 1, 64, 64))
    info = model_info("fcnn")
    assert info["params"] == 96 * 96 * 500 + 500 + 500 * 30 + 30
    assert info["reference"].startswith("seed 002") and info["macs"] > 0


def test_cnn7m_has_about_seven_million_parameters():
    params = sum(p.numel() for p in create_model("cnn7m").parameters())
    print(f"cnn7m parameters at 96x96, kaggle15: {params:,}")
    assert 6_500_000 <= params <= 7_500_000


# ---- pretrained backbones from local files (never downloads) -------------------------------------
def test_resnet50_tl_loads_a_local_state_dict(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(1)
    source = resnet50(weights=None)
    path = tmp_path / "rn50.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet50_tl", pretrained=str(path))
    backbone = model.backbone
    assert torch.equal(backbone.layer3[2].conv2.weight, source.layer3[2].conv2.weight)
    assert torch.equal(backbone.conv1.weight, source.conv1.weight)
    assert backbone.fc.out_features == 30  # the ImageNet head is replaced, not loaded
    assert create_model("resnet50_tl")(torch.zeros(1, 1, 96, 96)).shape == (1, 15, 2)

    summed = create_model("resnet50_tl", pretrained=path, adapter="sum")
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert summed.backbone.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(summed.backbone.conv1.weight, (source.conv1.weight / std).sum(1, keepdim=True))
    assert isinstance(summed.adapter, torch.nn.Identity)


def test_densenet121_tl_loads_a_local_state_dict_and_rejects_foreign_files(tmp_path):
    from torchvision.models import densenet121

    source = densenet121(weights=None)
    path = tmp_path / "dn121.pth"
    torch.save(source.state_dict(), path)
    model = create_model("densenet121_tl", schema="nose1", pretrained=path)
    name = "features.denseblock2.denselayer3.conv2.weight"
    assert torch.equal(model.backbone.state_dict()[name], source.state_dict()[name])

    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="foreign.pth.*do not fit"):
        create_model("densenet121_tl", pretrained=foreign)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_model("densenet121_tl", pretrained=tmp_path / "missing.pth")


def test_resnet50_aa_loads_a_local_timm_state_dict(tmp_path):
    timm = pytest.importorskip("timm")
    source = timm.create_model("resnetblur50", pretrained=False)
    path = tmp_path / "resnetblur50.pth"
    torch.save(source.state_dict(), path)
    backbone = create_model("resnet50_aa", pretrained=path).backbone
    assert torch.equal(backbone.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    # timm adapts the RGB stem to 1 channel by summing
    torch.testing.assert_close(backbone.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert backbone.fc.out_features == 30


def test_conv1x1_adapter_starts_as_imagenet_normalisation():
    adapter = create_model("resnet50_tl").adapter
    grey = torch.full((1, 1, 4, 4), 0.5)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(adapter(grey)[0, :, 0, 0], expected)


# ---- keypoint_net -------------------------------------------------------------------------------
def test_keypoint_net_fits_the_cpu_budget():
    model = create_model("keypoint_net")
    macs = count_macs(model, (1, 1, 96, 96))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(f"keypoint_net: {macs / 1e6:.1f} MMACs, {weight_bytes / 1e6:.2f} MB weights")
    assert 30e6 <= macs <= 80e6
    assert weight_bytes < 2e6


def test_soft_argmax_returns_cell_centres_in_codec_coordinates():
    stride, h, w = 4, 24, 24
    logits = torch.full((1, 2, h, w), -1e4)
    logits[0, 0, 5, 17] = 0.0   # row 5, column 17
    logits[0, 1, 0, 0] = 0.0
    pixels = codecs.decode(soft_argmax(logits), (h * stride, w * stride))
    # heatmap cell (r, c) covers pixels stride*c .. stride*c + stride - 1: its centre is stride*c + 1.5
    torch.testing.assert_close(pixels[0], torch.tensor([[17 * 4 + 1.5, 5 * 4 + 1.5], [1.5, 1.5]]))


def test_keypoint_net_starts_at_the_image_centre():
    out = create_model("keypoint_net", schema="ibug68").eval()(torch.rand(3, 1, 96, 96))
    torch.testing.assert_close(out, torch.zeros(3, 68, 2), atol=1e-6, rtol=0)


def test_keypoint_net_learns_a_bright_spot():
    """20 Adam steps on 8 synthetic 48x48 images must cut the error of locating a blob five-fold."""
    size = 48
    g = torch.Generator().manual_seed(0)
    centres = torch.randint(6, size - 6, (8, 2), generator=g)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.stack([torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 18.0) for cx, cy in centres.tolist()])
    target = codecs.encode(centres.float().unsqueeze(1), (size, size))
    torch.manual_seed(0)
    model = create_model("keypoint_net", schema="nose1", input_size=size)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = (model(images.unsqueeze(1)) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.2 * losses[0], losses


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False is the legacy exporter, on purpose
def test_keypoint_net_onnx_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = create_model("keypoint_net", schema="kaggle15").eval()
    with torch.no_grad():  # non-trivial heatmaps: the zero-initialised head would only test the centre
        model.heatmap.weight.normal_(0, 0.5)
        model.heatmap.bias.normal_(0, 0.5)
    path = tmp_path / "kn.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 96, 96),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["keypoints"],
                      dynamic_axes={"image": {0: "batch"}, "keypoints": {0: "batch"}})
    x = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == (3, 15, 2)
    assert abs(got - expected).max() < 1e-4
