# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Using nclib on your own model
#
# The chapters train nclib's own networks, but nothing in the measurements needs them. This page
# takes a network written in plain PyTorch, trained by a plain loop, and measures it as the book
# does: neural collapse NC1–NC4 {cite:p}`papyan2020prevalence`, the margins of
# {cite:t}`gao2023demystifying` (Theorem 4.1, Definition 4.3) and their bounds, once per epoch. It
# runs at a tiny size in the build (500 Fashion-MNIST images, a few seconds of training); scale
# the numbers up for a real run. The full list of functions is the [API reference](api.md).
#
# ## A network and a loop of your own
#
# A small network whose last module, `fc`, maps its $d = 32$ features to the 10 logits: an
# ordinary `nn.Linear` with a bias. The loop is Adam on cross-entropy, nothing from nclib. nclib
# needs to know one thing: which module is the classifier.

# %%
import torch
from myst_nb import glue
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset as Pairs

from nclib.data import balanced_split
from nclib.datasets import fashion_mnist
from nclib.tables import Table
from nclib.tracking import Tracker

torch.manual_seed(0)
torch.set_num_threads(1)
train_set, test_set = balanced_split(*fashion_mnist(), 50, 50, seed=0)
order = torch.Generator().manual_seed(0)
train_loader = DataLoader(Pairs(train_set.x, train_set.y), batch_size=100, shuffle=True,
                          generator=order)
measure_loader = DataLoader(Pairs(train_set.x, train_set.y), batch_size=500)
test_loader = DataLoader(Pairs(test_set.x, test_set.y), batch_size=500)


# %%
class OwnNet(nn.Module):
    def __init__(self, d=32, classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), nn.ReLU(),
                                  nn.Linear(256, d), nn.ReLU())
        self.fc = nn.Linear(d, classes)

    def forward(self, x):
        return self.fc(self.body(x))


# %% [markdown]
# ## The tracker
#
# `Tracker(model, head, train_loader, test_loader)` hooks the head: while `model(x)` runs it
# captures the features the head receives, and `tracker.log(epoch)` measures every metric in one
# pass, with the head's weight *and bias*, so that its accuracy and NC4 describe the decisions
# the model actually makes. Each call appends one record with the keys of
# `nclib.records.RECORD_KEYS` (the same format `nclib.train.train` writes and chapter 10's
# recorded runs keep) to `tracker.history`.

# %%
def fit(model, epochs, lr=1e-3, every=5):
    """Your own loop: Adam on cross-entropy, measured at 0 and every few epochs."""
    tracker = Tracker(model, model.fc, measure_loader, test_loader)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    tracker.log(0, lr=lr)
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in train_loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if epoch % every == 0:
            tracker.log(epoch, lr=lr)
    return tracker.history


own = OwnNet()
history = fit(own, epochs=50)


# %% tags=["hide-input"]
def show(history, caption):
    keys = ("train_accuracy", "train_nc1", "train_nc4_ncc_mismatch", "train_p_min",
            "test_accuracy")
    rows = [[r["epoch"], *(f"{r[k]:.3g}" for k in keys)] for r in history.records]
    return Table(["epoch", "train acc", "NC1", "NC4", "p_min", "test acc"], rows, caption)


show(history, "OwnNet with its own nn.Linear head (weight and bias)")

# %% [markdown]
# NC1 falls as the network fits its training images, and p_min turns positive once every
# training image is classified correctly (with a bias, p_min is the smallest gap of the logits
# the model computes, bias included).
#
# ## A fixed simplex ETF head in your network
#
# Section 5 of the paper fixes the classifier to a simplex ETF $M^*$, or to a permutation of it.
# nclib's `FixedHead` is a module like any other: drop it in place of `fc` and train the body.

# %%
from nclib.etf import permute, random_permutation, simplex_etf
from nclib.models import FixedHead

torch.manual_seed(0)
etf_net = OwnNet()
M_perm = permute(simplex_etf(10, 32, generator=0), random_permutation(10, generator=1))
etf_net.fc = FixedHead(M_perm)  # logits = z @ M, no gradient to M
etf_history = fit(etf_net, epochs=40)
show(etf_history, "the same network with a permuted simplex ETF as its fixed head")

# %% [markdown]
# ## The bounds on your features
#
# The bounds of Section 4 take features, labels and the classifier. A bias is handled by the
# usual reduction of an affine classifier to a linear one: the features get a constant 1
# appended and the matrix the bias as an extra row, which keeps every decision and every margin
# $\gamma_{y,y'}$ (`nclib.bounds.affine_inputs`). Theorem 4.4's bound is an upper bound on the
# test error; Theorem 4.10's a lower bound on the accuracy, which needs features that separate
# the sample, and says so when they do not.

# %%
from nclib.bounds import hoeffding_bound_of_features, margin_bound
from nclib.metrics import classifier_of

own.eval()
with torch.no_grad():
    Z = own.body(train_set.x).double()
M, bias = classifier_of(own.fc)
thm44 = margin_bound(Z, train_set.y, M, bias=bias)
Z1 = torch.cat([Z, torch.ones(len(Z), 1, dtype=Z.dtype)], 1)  # with the bias's constant
rho = torch.stack([Z1[train_set.y == c].norm(dim=1).max() for c in range(10)])
thm410, gamma_hat = hoeffding_bound_of_features(Z, train_set.y, M, rho, bias=bias)
test_error = 1 - history.records[-1]["test_accuracy"]
print(f"Theorem 4.4 (error ≲): {thm44.describe()}; measured test error {test_error:.3f}")
print(f"Theorem 4.10 (accuracy ≥): {thm410.describe()}")
glue("own_thm44", thm44.describe(), display=False)
glue("own_thm410", thm410.describe(), display=False)
glue("own_test_error", f"{test_error:.3f}", display=False)

# %% [markdown]
# Here Theorem 4.4 gives {glue:text}`own_thm44` against a measured test error of
# {glue:text}`own_test_error`, and Theorem 4.10 gives {glue:text}`own_thm410`: chapters 4 and 6
# explain why both say little at sizes like these. Everything above works the same on a GPU
# (`Tracker(..., device="cuda")`, features and bounds computed in float64 wherever they come
# from) and on any classifier whose head is an `nn.Linear`, a `FixedHead` or a `LinearHead`; for
# another head, pass its matrix `M` (d×C) and `bias` to the functions of `nclib.metrics` and
# `nclib.bounds` yourself.
