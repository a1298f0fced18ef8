"""nclib.models: shapes, parameter counts of the paper's backbones, and the fixed ETF head."""

import pytest
import torch
from torch import nn

from nclib.data import TensorDataset
from nclib.etf import simplex_etf
from nclib.models import (
    BACKBONES,
    FixedHead,
    LinearHead,
    NCModel,
    build_backbone,
    count_parameters,
    densenet121,
    mlp,
    resnet32,
    small_cnn,
    vgg11,
)
from nclib.train import TrainConfig, train

# Reference counts of the CIFAR-style networks with a 10-class linear classifier, minus that
# classifier's 10 biases (our heads are bias-free as in the paper): VGG11-BN 9 231 114 and
# DenseNet121 (growth 32) 6 956 298 as in the widely used kuangliu/pytorch-cifar models, ResNet32
# 464 154 (He et al. 2016, "0.46 M").
PAPER_COUNTS = {"vgg11": 9_231_104, "resnet32": 464_144, "densenet121": 6_956_288}
NATIVE_WIDTH = {"vgg11": 512, "resnet32": 64, "densenet121": 1024}


@pytest.mark.parametrize("name", ["vgg11", "resnet32", "densenet121"])
def test_paper_backbones_parameter_counts(name):
    net = build_backbone(name, (3, 32, 32))
    model = NCModel(net, LinearHead(net.feature_dim, 10))
    assert net.feature_dim == NATIVE_WIDTH[name]
    assert count_parameters(model) == PAPER_COUNTS[name]
    if name == "resnet32":
        assert 0.46e6 <= count_parameters(model) < 0.47e6


@pytest.mark.parametrize("name", ["vgg11", "resnet32", "densenet121"])
@pytest.mark.parametrize("in_shape", [(1, 28, 28), (3, 32, 32)])
def test_paper_backbones_shapes_any_input(name, in_shape):
    # A projection to d features (the C > d case of Section 5.2) is one linear layer after the
    # pooled features, so one forward pass checks both widths.
    proj = build_backbone(name, in_shape, d=7)
    assert proj.feature_dim == 7 and isinstance(proj[-1], nn.Linear)
    proj.eval()
    with torch.no_grad():
        pooled = proj[:-1](torch.randn(1, *in_shape))
        assert pooled.shape == (1, NATIVE_WIDTH[name])
        assert proj[-1](pooled).shape == (1, 7)
    assert count_parameters(proj[-1]) == NATIVE_WIDTH[name] * 7 + 7


def test_first_conv_adapts_to_input_channels():
    one, three = resnet32(1), resnet32(3)
    assert count_parameters(three) - count_parameters(one) == 2 * 16 * 9
    assert vgg11(1)[0].in_channels == 1 and densenet121(1)[0].in_channels == 1


def test_small_backbones_keep_their_signatures():
    m = mlp((1, 28, 28), 16, width=32, depth=2)
    c = small_cnn(1, 16, width=8)
    x = torch.randn(3, 1, 28, 28)
    assert m(x).shape == (3, 16) and c(x).shape == (3, 16)
    assert m.feature_dim == 16 and c.feature_dim == 16
    assert isinstance(m[-1], nn.Linear) and isinstance(c[-1], nn.Linear)
    assert set(BACKBONES) == {"mlp", "mlp_relu", "mlp_gauss", "small_cnn", "vgg11", "resnet32", "densenet121"}


def test_mlp_variants_end_as_documented():
    torch.manual_seed(0)
    relu = build_backbone("mlp_relu", (1, 28, 28), 16, 32)
    gauss = build_backbone("mlp_gauss", (1, 28, 28), 16, 32)
    x = torch.randn(64, 1, 28, 28)
    assert isinstance(relu[-1], nn.ReLU) and relu.eval()(x).min() >= 0  # features in the positive orthant
    assert isinstance(gauss[-1], nn.Linear) and gauss.eval()(x).min() < 0
    assert torch.all(gauss[-1].bias == 0)
    with pytest.raises(ValueError, match="last_init"):
        mlp((1, 28, 28), 16, last_init="orthogonal")
    with pytest.raises(ValueError, match="feature_relu"):
        mlp((1, 28, 28), 16, feature_relu=1)


def test_gaussian_last_layer_has_a_rotation_invariant_law():
    """The negative control needs W and RᵀW to have the same law. Column norms of W (the d-vector
    of one input unit) are invariant under any R; PyTorch's uniform law is not rotation-invariant:
    its entries are bounded by 1/√fan_in, rotated ones exceed that bound."""
    from nclib.etf import random_rotation

    torch.manual_seed(1)
    W = build_backbone("mlp_gauss", (1, 28, 28), 32, 256)[-1].weight.detach().double()
    assert abs(W.std().item() * 16 - 1) < 0.02  # N(0, 1/256)
    R = random_rotation(32, generator=3)
    U = build_backbone("mlp", (1, 28, 28), 32, 256)[-1].weight.detach().double()
    bound = 1 / 16
    assert U.abs().max() <= bound and (R.T @ U).abs().max() > bound  # the uniform law moves under R
    # a Kolmogorov–Smirnov comparison of the entries of W and RᵀW: the same law
    from scipy.stats import ks_2samp
    assert ks_2samp(W.flatten().numpy(), (R.T @ W).flatten().numpy()).pvalue > 0.01


def test_build_backbone_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet18", (3, 32, 32))
    with pytest.raises(ValueError, match="in_shape"):
        build_backbone("mlp", (28, 28))
    with pytest.raises(ValueError, match="width"):
        build_backbone("vgg11", (3, 32, 32), width=8)
    with pytest.raises(ValueError, match="8×8"):
        build_backbone("resnet32", (3, 4, 4))
    with pytest.raises(ValueError, match="in_channels"):
        resnet32(0)
    with pytest.raises(ValueError, match="feature dimension"):
        vgg11(3, d=0)


def test_logits_without_amp_equal_forward():
    torch.manual_seed(0)
    model = NCModel(mlp((1, 8, 8), 6, width=16), FixedHead(simplex_etf(4, 6, generator=0), logit_scale=2.5))
    x = torch.randn(5, 1, 8, 8)
    model.eval()
    assert torch.equal(model.logits(x), model(x))
    assert torch.equal(model.logits(x, amp=True), model(x))  # amp only acts on CUDA


def test_the_bf16_path_of_a_gpu_run_runs_on_the_cpu_too():
    """The paper scale's amp=True path (bf16 backbone, fp32 head), run through CPU autocast: the
    logits come out in fp32, within bf16 rounding of the fp32 logits, for an MLP and a CNN."""
    from nclib.models import small_cnn

    torch.manual_seed(0)
    for backbone, x in ((mlp((1, 8, 8), 6, width=16), torch.randn(5, 1, 8, 8)),
                        (small_cnn(1, 6, 4), torch.randn(5, 1, 8, 8))):
        model = NCModel(backbone, FixedHead(simplex_etf(4, 6, generator=0), logit_scale=2.5)).eval()
        mixed, full = model._mixed_logits(x), model(x)
        assert mixed.dtype == torch.float32 and mixed.shape == full.shape
        assert torch.allclose(mixed, full, rtol=0.05, atol=0.05 * full.abs().max().item())
        assert not torch.equal(mixed, full)  # bf16 did run: the logits are rounded differently


def test_fixed_head_is_a_buffer_with_explicit_scale():
    M = simplex_etf(5, 7, generator=1)
    head = FixedHead(M, logit_scale=3.0)
    assert [n for n, _ in head.named_parameters()] == []
    assert [n for n, _ in head.named_buffers()] == ["M"]
    assert torch.allclose(head.matrix().double(), 3.0 * M)
    z = torch.randn(4, 7)
    assert torch.allclose(head(z), 3.0 * z @ M.float())
    assert "fixed" in repr(head)


def test_fixed_head_stays_fixed_after_training_steps():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(8)
    x = torch.randn(32, 1, 6, 6, generator=g) + y[:, None, None, None].float()
    data = TensorDataset(x, y, [str(i) for i in range(4)])
    M = simplex_etf(4, 5, generator=2)
    model = NCModel(mlp((1, 6, 6), 5, width=16), FixedHead(M, logit_scale=2.0))
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    train(model, data, data, TrainConfig(epochs=3, batch_size=8, lr=0.1, weight_decay=1e-2), progress=False)
    assert torch.equal(model.head.M, M.float())  # unchanged by SGD, momentum and weight decay
    assert model.head.M.grad is None and not model.head.M.requires_grad
    assert any(not torch.equal(before[n], p) for n, p in model.backbone.named_parameters())  # it did train
    assert count_parameters(model) == count_parameters(model.backbone)
