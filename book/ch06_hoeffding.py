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
# # A Hoeffding-type bound
#
# Theorem 4.8 needs covering numbers, a Lipschitz constant and a training set that grows
# exponentially with the input dimension. The paper's last theorem drops all three and keeps one
# quantity per class, the largest feature norm $\rho_y$.
#
# ```{prf:theorem} Hoeffding-type bound, Gao et al. 4.10
# :nonumber:
# :label: thm-410
# Let $S$ be balanced ($N/C$ samples per class) and let $(M, f(\cdot;w))$ linearly separate $S$ by
# margins $\{\gamma_{y,y'}\}_{y\ne y'}$ (Definition 4.3). Let
# $\rho_y = \sup_{w,\,x\sim\mathcal P_{x|y}}\lVert f(x;w)\rVert$ be the largest feature norm of class
# $y$. Then, with $\mathcal H(\alpha, d, \rho, n) = \exp\!\big(-n\alpha^2/(8d^2\rho^2)\big)$,
#
# $$\begin{aligned}
# \mathrm{Acc} \ge 1 - \frac{2d}{C}\sum_{y=1}^C\Big(&\mathcal H\big(1, d, \rho_y, N/C\big)\\
# &+ \mathcal H\Big(\min_{y'\ne y}\frac{\gamma_{y,y'}}{\lVert M_y - M_{y'}\rVert} - \sqrt{N/C},\ d,
# \rho_y, N/C\Big)\Big).
# \end{aligned}$$
# ```
#
# **Remark 4.11** of the paper reads two things into it: the error decays exponentially in $N$
# (against $O(1/N)$ for Theorem 4.8), and the feature magnitude $\rho_y$ matters, "an excessive
# magnitude can impair the classifier's generalization capacity". The proof (in the paper's
# appendix, which we do not have) applies Hoeffding's inequality to the features of the training
# sample, that is, it treats $f(x_i; w)$ as independent draws although $w$ was fitted to those very
# $x_i$. Public reviews of the paper named this step. This chapter computes the bound exactly as
# printed (`nclib.bounds.hoeffding_bound`), finds where it is vacuous and where it binds, shows why
# no bound of this form can hold, and then tests it where it could fail.
#
# Three properties can be read off the formula before running anything, and all matter below.
# $\mathcal H$ depends on $\alpha^2$, so the second term cannot tell a large margin from a negative
# one. $\rho_y$, $\gamma_{y,y'}/\lVert M_y-M_{y'}\rVert$ and the constant $1$ in the first term are all
# in the units of the features: multiplying every feature by $a > 0$ changes no prediction, hence
# no accuracy, but it changes the bound. And, as printed, the bound gets *worse* as the margin grows,
# as long as $\hat\gamma_y = \min_{y'}\gamma_{y,y'}/\lVert M_y-M_{y'}\rVert$ is below $\sqrt{N/C}$:
# $\alpha = \hat\gamma_y - \sqrt{N/C}$ is then negative and shrinks in size as $\hat\gamma_y$ grows, so
# $\mathcal H(\alpha, \dots)$ grows. With feature norms bounded by $\rho_y$, $\hat\gamma_y\le\rho_y$, so
# this is the regime of every classifier whose features are shorter than $\sqrt{N/C}$.

# %% tags=["parameters"]
# synthetic part: classes uniform in balls around the vertices of a simplex ETF
num_classes = 4
feature_dim = 3
separation = 1.0
ball_radius = 0.5
test_per_class = 20_000
# trained part: an MLP on Fashion-MNIST with a fraction of the training labels randomized
per_class_train = 100
per_class_test = 200
label_noise = (0.0, 0.5, 1.0)
hidden_width = 512
net_feature_dim = 32
feature_radius = 0.01    # ‖f(x; w)‖ is r for every x and every w, fixed before training
temperature = 10.0       # logits: (temperature / r)·⟨M*_y, f(x)⟩, M* a fixed ETF
epochs = 120
max_epochs = 600         # cap: training goes on past `epochs` until every label fits
lr = 0.05
seed = 0

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue
from torch import nn

from nclib.bounds import (hoeffding_bound, hoeffding_bound_of_features,
                          hoeffding_margin_curve)
from nclib.etf import simplex_etf
from nclib.synthetic import ball_mixture

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


# %%
# the bound against a common margin, C = 4, d = 3, N/C = 50, ρ = 1.5
grid = np.linspace(0, 10, 201)
marks = [1.0, 5.0, math.sqrt(50)]
curve = hoeffding_margin_curve(grid, 1.5, 3, 50, 4)
at_marks = hoeffding_margin_curve(marks, 1.5, 3, 50, 4)
for g_, v in zip(marks, at_marks):
    print(f"γ̂ = {g_:5.2f}: bound {v:+.2f}")
glue("ch6_m1", f"{at_marks[0]:.2f}", display=False)
glue("ch6_m5", f"{at_marks[1]:.2f}", display=False)
glue("ch6_m7", f"{at_marks[2]:.2f}", display=False)

# %% [markdown]
# For $C = 4$ classes in $d = 3$ with $N/C = 50$ and $\rho_y = 1.5$, every class sharing the margin
# $\hat\gamma$: the bound is {glue:text}`ch6_m1` at $\hat\gamma\le1$, {glue:text}`ch6_m5` at
# $\hat\gamma = 5$ and {glue:text}`ch6_m7` at $\hat\gamma = \sqrt{50}\approx7.07$, the worst value
# (the curve below, {numref}`fig-ch6-bound-vs-margin`; the dotted line is $\sqrt{N/C}$). A
# classifier that separates its classes better gets a worse guarantee, the opposite of what a
# margin bound is for.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Theorem 4.10 as printed, against a normalized margin $\\hat\\gamma$ shared by every class, with the marked values labelled and $\\sqrt{N/C}$ dotted. Follow the curve to the dotted line: up to it, a larger margin gives a worse guarantee.", "name": "fig-ch6-bound-vs-margin"}}
from nclib.theory_plots import hoeffding_margin_figure

hoeffding_margin_figure(grid, curve, list(zip(marks, at_marks)), math.sqrt(50))
plt.show()

# %% [markdown]
# ## Where it binds: features with known norms
#
# Take the identity as the feature map and let class $y$ be uniform in a ball of radius
# {glue:text}`ch6_radius` around {glue:text}`ch6_sep` times vertex $y$ of a simplex ETF in
# $\mathbb R^{d}$, $d$ = {glue:text}`ch6_d`, with $M$ that same ETF. Then $\rho_y$ = separation + radius
# exactly, the classes are separated with room to spare (test accuracy is 1), and the only question
# is how many samples the bound needs to say so. We run $N/C$ from 1 to 10 000, and at $N/C$ = 50
# rescale the features by $a$.

# %%
C, d = num_classes, feature_dim
M = simplex_etf(C, d, generator=seed)
rho_exact = torch.full((C,), separation + ball_radius, dtype=torch.float64)
test_balls = ball_mixture(separation * M, test_per_class, ball_radius, generator=seed + 1)
ball_correct = int(((test_balls.x @ M).argmax(1) == test_balls.y).sum())
ball_accuracy = ball_correct / len(test_balls.y)

sizes = np.unique(np.logspace(0, 4, 33).astype(int))
by_size = []
for n in sizes:
    S = ball_mixture(separation * M, int(n), ball_radius, generator=seed)
    by_size.append(hoeffding_bound_of_features(S.x, S.y, M, rho_exact)[0].value)
by_size = np.array(by_size)

fixed_n = 50
S50 = ball_mixture(separation * M, fixed_n, ball_radius, generator=seed)
scales = np.logspace(-2, 1, 31)
# margins scale with the features (γ̂(aZ) = aγ̂(Z)): measured once, then rescaled
g50 = hoeffding_bound_of_features(S50.x, S50.y, M, rho_exact)[1]
by_scale = np.array([hoeffding_bound(a * g50, a * rho_exact, d, len(S50.y), C).value
                     for a in scales])

# %%
first_useful = sizes[np.argmax(by_size > 0)] if (by_size > 0).any() else None
first_090 = sizes[np.argmax(by_size >= 0.9)] if (by_size >= 0.9).any() else None
bound_at_1 = by_scale[np.argmin(abs(scales - 1))]
print(f"test accuracy of the ETF classifier: {ball_accuracy:.4f} "
      f"on {len(test_balls.y):,} points")
print(f"bound non-vacuous from N/C = {first_useful}; ≥ 0.9 from N/C = {first_090}")
print(f"at N/C = {fixed_n}: bound {bound_at_1:.3g} at a = 1, "
      f"{by_scale[0]:.4f} at a = {scales[0]:g}")
for name, value in dict(radius=f"{ball_radius:g}", sep=f"{separation:g}", d=str(d),
                        first_useful=str(first_useful), first_090=str(first_090),
                        fixed_n=str(fixed_n), scale_at_1=f"{bound_at_1:.3g}",
                        scale_small=f"{by_scale[0]:.3f}",
                        scale_small_a=f"{scales[0]:g}").items():
    glue(f"ch6_{name}", value, display=False)

# %% [markdown]
# Top ({numref}`fig-ch6-size-scale`): the bound against the number of samples per class, with the
# measured accuracy dashed and 0 in red. Bottom: the same classifier with its features multiplied
# by $a$; every prediction is the same at every $a$, so any movement of the curve is the formula's,
# not the classifier's.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Theorem 4.10 with exact norms on perfectly separated balls: top, the accuracy bound against the number of samples per class; bottom, the same classifier with its features multiplied by $a$, which changes no prediction. Dashed, the measured test accuracy; red, zero. Read where the top curve first rises above zero, and any movement of the bottom curve as the formula's, not the classifier's.", "name": "fig-ch6-size-scale"}}
from nclib.theory_plots import hoeffding_size_scale_figure

hoeffding_size_scale_figure(sizes, by_size, scales, by_scale, ball_accuracy,
                            separation + ball_radius, fixed_n)
plt.show()

# %% [markdown]
# With exact norms and perfectly separated classes the bound is vacuous (below zero) until
# $N/C$ = {glue:text}`ch6_first_useful` samples per class and passes 0.9 at
# $N/C$ = {glue:text}`ch6_first_090`; past that it does decay exponentially, as Remark 4.11 says.
# At $N/C$ = {glue:text}`ch6_fixed_n` the bound is {glue:text}`ch6_scale_at_1` for the features as
# they are and {glue:text}`ch6_scale_small` once they are multiplied by $a$ =
# {glue:text}`ch6_scale_small_a`, for a classifier whose every prediction is the same. Here no harm
# is done, since the accuracy really is 1.
#
# ## Why no bound of this form can hold
#
# The bound depends on the classifier only through $\hat\gamma_y$ and $\rho_y$, and both scale with
# the features: for the class $a\mathcal F = \{a f(\cdot; w)\}$ obtained from any bounded class of
# feature maps $\mathcal F$, $\rho_y(a\mathcal F) = a\,\rho_y(\mathcal F)$ (the supremum over $w$ and
# $x$ scales too) and $\hat\gamma_y$ becomes $a\hat\gamma_y$, while every prediction, hence every
# accuracy, is unchanged. As $a\to0$, $\mathcal H(1, d, a\rho_y, N/C) = \exp(-N/(8Cd^2a^2\rho_y^2))\to0$
# and, since $(a\hat\gamma_y-\sqrt{N/C})^2\to N/C$, the second term vanishes too: the bound tends to 1
# for *every* classifier in $a\mathcal F$ that separates its sample, on *every* sample. If
# $\mathcal F$ contains a network that memorizes randomly labelled data (wide networks do), the
# theorem then promises accuracy near 1 to a classifier at chance. So the statement is false as
# printed, whatever $\rho_y$ is taken to mean; the gap is the Hoeffding step, which treats
# $f(x_i; w)$ as independent draws although $w$ was fitted to those very $x_i$. A correct version
# has to pay for the choice of $w$, as Theorem 4.4 does with its Rademacher term, and a term like
# that is exactly what grows when a network memorizes.
#
# ## A test that could fail: a norm constraint fixed before training
#
# The argument above picks $a$ after the fact. To test the theorem as a reader would use it, we fix
# the scale *before* training: the network's last layer projects its features onto the sphere of
# radius $r$ = {glue:text}`ch6_r` (`OnSphere` below), so $\lVert f(x; w)\rVert = r$ for every input
# and every weight, and $\rho_y = r$ is exactly the supremum of the theorem, no estimate involved.
# The classifier is a fixed simplex ETF with logits $(\tau/r)\langle M^*_y, f(x)\rangle$,
# $\tau$ = {glue:text}`ch6_tau` (the factor $1/r$ makes training the same at every $r$; margins
# normalized by $\lVert M_y-M_{y'}\rVert$ do not depend on it). We train on
# {glue:text}`ch6_ntrain` Fashion-MNIST images with a fraction $q$ of the training labels replaced by
# uniform random ones, until every label fits. The distribution the sample comes from is then
# "image, label randomized with probability $q$", so accuracy is measured on test images whose
# labels are randomized the same way.
#
# **Rule, fixed before the numbers.** For each $q$, the bound at radius $r$ against the measured
# test accuracy and its exact (Clopper–Pearson) interval, Bonferroni-corrected over the three
# networks: the theorem is **violated** if some accuracy interval lies entirely below the bound,
# **holds but vacuous** if every bound is ≤ 0, and **holds** otherwise. Nothing forces the outcome:
# a network whose test accuracy reached the bound would pass. **Control** (where the bound should
# hold): the ball mixture above at the sample sizes where the bound is informative, whose classifier
# makes no error. The same networks read at the unit sphere ($r = 1$) are shown beside.

# %%
from nclib.datasets import fashion_mnist
from nclib.data import balanced_split
from nclib.models import FixedHead, NCModel
from nclib.train import TrainConfig, train


class OnSphere(nn.Module):
    """Features projected onto the sphere of radius r: ‖f(x; w)‖ = r for every x and w."""

    def __init__(self, radius):
        super().__init__()
        self.radius = radius

    def forward(self, u):
        return self.radius * u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)


# %%
train_full, test_full = fashion_mnist()
train_clean, test_clean = balanced_split(train_full, test_full, per_class_train,
                                         per_class_test, seed)
K, N = train_clean.num_classes, len(train_clean)


def randomize(data, q, generator):
    """Replace each label, with probability q, by a uniform random class (maybe the
    same one)."""
    flip = torch.rand(len(data), generator=generator) < q
    random_labels = torch.randint(0, K, (len(data),), generator=generator)
    noisy = torch.where(flip, random_labels, data.y)
    return type(data)(data.x, noisy, data.classes)

# %%
def sphere_network(q):
    """Train the MLP with features on the sphere of radius r and a fixed simplex ETF head
    on labels randomized with probability q, until every training label fits."""
    g = torch.Generator().manual_seed(seed + int(1000 * q))
    train_q, test_q = randomize(train_clean, q, g), randomize(test_clean, q, g)
    torch.manual_seed(seed)
    width, d_net = hidden_width, net_feature_dim
    backbone = nn.Sequential(
        nn.Flatten(), nn.Linear(train_clean.x[0].numel(), width), nn.ReLU(),
        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, d_net),
        OnSphere(feature_radius))
    head = FixedHead(simplex_etf(K, d_net, generator=seed), temperature / feature_radius)
    model = NCModel(backbone, head)
    config = TrainConfig(epochs=epochs, batch_size=100, lr=lr, weight_decay=0.0,
                         seed=seed, until_accuracy=1.0, max_epochs=max_epochs)
    history = train(model, train_q, test_q, config, progress=False)
    return model.eval(), history, train_q, test_q

# %%
runs = []
rho = torch.full((K,), feature_radius, dtype=torch.float64)  # exact: ‖f(x; w)‖ = r
for q in label_noise:
    model, history, train_q, test_q = sphere_network(q)
    with torch.no_grad():
        Z = model.features(train_q.x).double()
        correct = int((model(test_q.x).argmax(1) == test_q.y).sum())
        clean_acc = (model(test_clean.x).argmax(1) == test_clean.y).double().mean().item()
    M_q = model.classifier_matrix().double()
    b_r, gmin = hoeffding_bound_of_features(Z, train_q.y, M_q, rho)
    b_1 = hoeffding_bound(gmin / feature_radius, rho / feature_radius,
                          net_feature_dim, N, K)
    runs.append(dict(q=q, correct=correct, n=len(test_q), clean_acc=clean_acc,
                     fit_epoch=history.terminal_epoch, bound_r=b_r.value,
                     bound_1=b_1.value, gamma_hat_min=gmin))
print(f"N = {N} training images, d = {net_feature_dim}, r = {feature_radius:g}")
print(f"{'q':>4s} {'fit at':>6s} {'acc':>6s} {'acc clean':>9s} {'bound (r)':>10s} "
      f"{'(r = 1)':>9s}")
for r in runs:
    print(f"{r['q']:4.1f} {r['fit_epoch']:6d} {r['correct'] / r['n']:6.3f} "
          f"{r['clean_acc']:9.3f} {r['bound_r']:10.4g} {r['bound_1']:9.4g}")

# %%
from nclib.decisions import AccuracyCase, decide_thm410

cases = [AccuracyCase(f"q = {r['q']:g}", r["bound_r"], r["correct"], r["n"])
         for r in runs]
controls = [AccuracyCase(f"balls, N/C = {n}", v, ball_correct, len(test_balls.y))
            for n, v in zip(sizes, by_size) if v > 0]
verdict = decide_thm410(cases, controls, control_name="ball mixture, exact norms")
verdict.glue("thm410")
print(verdict.text())
mem = max(runs, key=lambda r: r["q"])   # the network fitted to the most random labels
for name, value in dict(r=f"{feature_radius:g}", tau=f"{temperature:g}", ntrain=f"{N:,}",
                        mem_q=f"{mem['q']:g}", mem_acc=f"{mem['correct'] / mem['n']:.3f}",
                        mem_bound=f"{mem['bound_r']:.4f}",
                        mem_natural=f"{mem['bound_1']:.3g}").items():
    glue(f"ch6_{name}", value, display=False)

# %% [markdown]
# Each pair of bars ({numref}`fig-ch6-bound-vs-accuracy`) is one network: its measured test
# accuracy (with the 95% interval) and the accuracy Theorem 4.10 promises at the radius fixed
# before training. A bar on the right taller than the interval on the left is a violation.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "One pair of bars per network, labelled by the fraction $q$ of its training labels that were randomized: the measured test accuracy with its 95% interval (left bar) and the accuracy Theorem 4.10 promises at the radius fixed before training (right bar, clipped at zero); dotted, chance. A right bar taller than the interval of the left one is a violation of the theorem.", "name": "fig-ch6-bound-vs-accuracy"}}
from nclib.stats import clopper_pearson
from nclib.theory_plots import bound_vs_accuracy_figure

intervals = [clopper_pearson(r["correct"], r["n"]) for r in runs]
bound_vs_accuracy_figure([f"q = {r['q']:g}" for r in runs], [r["bound_r"] for r in runs],
                         [r["correct"] / r["n"] for r in runs],
                         [i.low for i in intervals], [i.high for i in intervals],
                         chance=1 / K)
plt.show()

# %% [markdown]
# For the network fitted to fully random labels ($q$ = {glue:text}`ch6_mem_q`) the bound at
# $r$ = {glue:text}`ch6_r` is {glue:text}`ch6_mem_bound` while its accuracy on the distribution its
# sample came from is {glue:text}`ch6_mem_acc`; read at the unit sphere the same network's bound is
# {glue:text}`ch6_mem_natural` (vacuous). Over the three networks: {glue:text}`key_thm410`
# ({glue:text}`sure_thm410`); the control: {glue:text}`control_thm410`. Verdict on Theorem 4.10 as
# printed: **{glue:text}`verdict_thm410`**. Every hypothesis of the theorem holds for these
# networks: the sample is balanced and separated by $M$, and the feature norms are bounded by an
# exact $\rho_y$, for every $w$. What fails is the proof's use of Hoeffding's inequality on
# $f(x_i; w)$ as if $w$ had been drawn before the sample.
#
# ## Remark 4.11: does the feature magnitude matter?
#
# Remark 4.11 reads the $\rho_y$ in the bound as a property of generalization: "an excessive
# magnitude can impair the classifier's generalization capacity". **Rule, fixed before the
# numbers.** Take one classifier and multiply its features by $a$ from 0.01 to 10: $\rho_y$ goes
# with $a$, every prediction stays. If the bound (clipped to $[0, 1]$) moves by more than the width
# of the accuracy's 95% interval, its dependence on $\rho_y$ is a property of the formula and not
# of generalization, and the remark's reading is **violated**; if it moves by less, it **holds**
# (is not contradicted) at this size. We apply it to the ball-mixture classifier at $N/C$ = 50.
# **Control** (where the effect is absent): the same sweep with $N/C = 10^6$, where the bound
# stays at 1 for every $a$ in the range.

# %%
from nclib.decisions import decide_rem411

control_sweep = [hoeffding_bound(a * g50, a * rho_exact, d, C * 10**6, C).value
                 for a in scales]
verdict411 = decide_rem411(by_scale, ball_correct, len(test_balls.y), control_sweep)
verdict411.glue("rem411")
print(verdict411.text())

# %% [markdown]
# Verdict on Remark 4.11's magnitude reading: **{glue:text}`verdict_rem411`**
# ({glue:text}`key_rem411`; the control: {glue:text}`control_rem411`). The exponential decay in $N$
# that the remark also claims is real for the formula (the top panel above), but it is the decay of
# a bound shown above to be false, so it says nothing about how fast the error of a trained network
# falls.
#
# ## Remark 4.11, live
#
# The sliders rescale the features of the clean-label network ($q$ = 0) read at the unit sphere
# (feature × $a$ is radius $a$; its measured $\min_{y'}\gamma_{y,y'}/\lVert M_y - M_{y'}\rVert$ per
# class and $\rho_y = 1$) and change the number of samples per class (live in Jupyter). Watch the
# bound move while the classifier, and so its accuracy, stays the same.

# %%
from nclib.widgets import hoeffding_explorer

clean = runs[0]
explorer = hoeffding_explorer(clean["gamma_hat_min"] / feature_radius,
                              torch.ones(K, dtype=torch.float64), net_feature_dim, N)
