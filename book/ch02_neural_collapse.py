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
# # Neural collapse and the simplex ETF
#
# This chapter sets up the objects the rest of the book measures: the simplex equiangular tight
# frame of Definition 3.1 of {cite:t}`gao2023demystifying`, the four neural-collapse properties of
# their Section 3 (after {cite:t}`papyan2020prevalence`), and the margins of their Section 4. Then
# it trains a small network on Fashion-MNIST {cite:p}`xiao2017fashion` on the CPU, past the epoch
# where it fits its training set, and watches collapse happen.
#
# ## The simplex ETF
#
# ```{prf:definition} Simplex equiangular tight frame, Gao et al. 3.1
# :nonumber:
# :label: def-simplex-etf
# A simplex ETF is the collection of the $C$ columns of
#
# $$M^* = \alpha R \sqrt{\frac{C}{C-1}}\left(I - \frac{1}{C}\mathbb{1}\mathbb{1}^\top\right),$$
#
# where $I\in\mathbb R^{C\times C}$ is the identity, $\mathbb 1\in\mathbb R^C$ the all-ones vector,
# $R\in\mathbb R^{d\times C}$ ($d\ge C$) a matrix with orthonormal columns and $\alpha\in\mathbb R$ a
# scale.
# ```
#
# Its Gram matrix does not depend on $R$:
# $M^{*\top}M^* = \alpha^2\frac{C}{C-1}(I - \frac1C\mathbb 1\mathbb 1^\top)$, so every column has norm
# $|\alpha|$ and every pair has cosine $-1/(C-1)$, the most negative value $C$ equal-norm vectors
# summing to zero can share. Only a $(C-1)$-dimensional subspace is used, so
# `nclib.etf.simplex_etf` also accepts $d = C-1$; it draws the orthonormal factor Haar-randomly
# (QR with sign correction, {cite:t}`mezzadri2007generate`). Below, $C = 10$ in $d = 16$.

# %%
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from nclib.etf import etf_gram, simplex_etf
from nclib.metrics import scale_free_margin_of_etf

M_star = simplex_etf(10, 16, generator=0)
gram = M_star.T @ M_star
off_diagonal = gram[~torch.eye(10, dtype=torch.bool)]
gram_error = (gram - etf_gram(10)).abs().max().item()
norms = M_star.norm(dim=0)
print(f"column norms in [{norms.min():.12f}, {norms.max():.12f}]")
print(f"cosines in [{off_diagonal.min():.12f}, {off_diagonal.max():.12f}]; "
      f"-1/(C-1) = {-1/9:.12f}")
print(f"largest deviation from the closed-form Gram matrix: {gram_error:.1e}")
glue("etf_gram_error", f"{gram_error:.0e}", display=False)

# %% [markdown]
# The largest deviation from the closed form is {glue:text}`etf_gram_error`, rounding error. The
# explorer below draws an ETF for a chosen $C$, $d$ and rotation: the arrows (the first three
# coordinates of each column) move with the rotation, the Gram matrix does not. In Jupyter the
# sliders are live; the static figure under it is the default setting.

# %%
from nclib.widgets import etf_explorer

explorer = etf_explorer(C=4, d=3)

# %% [markdown]
# ## The four properties of neural collapse
#
# Write $z_{y,i}$ for the last-layer feature of the $i$-th training sample of class $y$,
# $\bar z_y$ for its class mean, $\bar z_G$ for the mean of the class means and $M_y$ for the
# classifier's vector of class $y$ (logits are $\langle M_y, z\rangle$, no bias, as in the paper).
# Section 3 of the paper lists the properties; we measure each with the quantity of
# {cite:t}`papyan2020prevalence`, all computed in `nclib.metrics`:
#
# NC1, variability collapse
# : $z_{y,i}\to\bar z_y$. Measured by $\operatorname{tr}(\Sigma_W\Sigma_B^{+})/C$, with $\Sigma_W$ the
#   within-class covariance of the features and $\Sigma_B$ the covariance of the class means.
#
# NC2, convergence to a simplex ETF
# : the centred class means $\bar z_y - \bar z_G$ (and the classifier's columns $M_y$) become equinorm
#   and equiangular with cosine $-1/(C-1)$. Measured by the coefficient of variation of their norms,
#   the standard deviation of their cosines, and the mean of $|\cos + 1/(C-1)|$.
#
# NC3, self-duality
# : the classifier aligns with the class means: $\lVert M/\lVert M\rVert_F - \bar Z/\lVert\bar Z\rVert_F\rVert_F^2 \to 0$,
#   $\bar Z$ the $d\times C$ matrix of centred means.
#
# NC4, nearest-class-centre decisions
# : $\arg\max_y\langle M_y, z\rangle$ agrees with $\arg\min_y\lVert z-\bar z_y\rVert$; measured as the
#   fraction of training samples where they disagree.
#
# ```{note}
# **Numbering.** Gao et al.'s Section 3 swaps the middle two: their NC2 is *convergence to self
# duality* ($\lVert z_{y,i} - M_y\rVert\to 0$) and their NC3 is *convergence to a simplex ETF*.
# This book and `nclib` keep the numbering of {cite:t}`papyan2020prevalence` used above (NC2 =
# simplex ETF, NC3 = self-duality), so "NC2" in a figure here is the paper's NC3 and vice versa.
# ```
#
# ## Margins
#
# Section 4 of the paper measures separation by margins. The margin of the training set is
#
# $$p_{\min} = \min_{y\ne y'}\ \min_i\ \langle M_y - M_{y'}, z_{y,i}\rangle$$
#
# (Theorem 4.1), positive exactly when every training sample is classified correctly. The pairwise
# margin $\gamma_{y,y'}$ of Definition 4.3 is the largest $\gamma$ with
# $(M_y - M_{y'})^\top z\ge\gamma$ on class $y$ and $\le -\gamma$ on class $y'$; the smallest of them
# is $p_{\min}$. Both grow without bound if $M$ or $z$ is multiplied by a constant, a point the
# paper's reviewers raised. We therefore also report the **scale-free margin**
#
# $$\hat p = \min_{y\ne y'}\frac{\gamma_{y,y'}}{\lVert M_y-M_{y'}\rVert\,\bar\rho},\qquad
# \bar\rho = \Big(\tfrac1N\textstyle\sum_i\lVert z_i\rVert^2\Big)^{1/2},$$
#
# which is unchanged by any rescaling of $M$ or of the features. For features collapsed onto a
# simplex ETF ($z = \beta M_y$) it equals $\sqrt{C/(2(C-1))}$, which is
# {glue:text}`etf_scale_free` for $C = 10$: an upper reference for the networks below.

# %%
glue("etf_scale_free", f"{scale_free_margin_of_etf(10):.3f}", display=False)

# %% [markdown]
# ## Training into the terminal phase
#
# A small network (a two-hidden-layer MLP with batch norm, whose last layer is linear to $d = 64$
# features, then a bias-free linear classifier) is trained with SGD, momentum 0.9 and weight decay on
# a class-balanced subset of Fashion-MNIST. The **parameters** cell holds the CPU scale that the book
# build executes; change it in Jupyter to run longer or on more data.

# %% tags=["parameters"]
per_class_train = 200     # training images per class (2 000 in all)
per_class_test = 200      # test images per class
feature_dim = 64
hidden_width = 256
epochs = 150
lr = 0.02
weight_decay = 2e-3
lr_drop_epoch = 100       # learning rate × 0.1 from this epoch
max_epochs = 600          # cap: training goes on past `epochs` until every label fits
seed = 0

# %%
from nclib.datasets import fashion_mnist
from nclib.data import balanced_split
from nclib.models import LinearHead, NCModel, mlp
from nclib.train import FeatureSnapshots, TrainConfig, train

torch.manual_seed(seed)
train_full, test_full = fashion_mnist()
train_set, test_set = balanced_split(train_full, test_full, per_class_train,
                                     per_class_test, seed)
backbone = mlp((1, 28, 28), feature_dim, hidden_width, depth=2)
model = NCModel(backbone, LinearHead(feature_dim, 10))
config = TrainConfig(epochs=epochs, batch_size=64, lr=lr, weight_decay=weight_decay,
                     milestones=(lr_drop_epoch,), seed=seed, until_accuracy=1.0,
                     max_epochs=max_epochs)
snapshots = FeatureSnapshots(train_set.x)  # features at the start and end of the TPT
history = train(model, train_set, test_set, config, progress=False, on_epoch=snapshots)
print(f"first epoch with 100% training accuracy: {history.terminal_epoch}; "
      f"trained {history.epochs_trained} epochs (schedule {epochs}, cap {max_epochs})")

# %% [markdown]
# The four panels below ({numref}`fig-ch2-nc-curves`) follow NC1–NC4 on the training set; the
# grey band is the terminal phase.
# Look at whether the curves keep falling inside the band, where the training error is already zero.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "NC1 to NC4 of the training features along training, one panel each, with the terminal phase shaded grey. Look at whether each curve keeps falling inside the grey band, where every training image is already classified correctly.", "name": "fig-ch2-nc-curves"}}
from nclib.theory_plots import collapse_figure, margins_figure

collapse_figure(history)
plt.show()

# %% [markdown]
# ## What the run shows
#
# The checks below read the history rather than the figure. The terminal phase starts at the first
# epoch with 100% training accuracy (with a large learning rate a few samples may still flip back
# and forth after it; they settle after the learning-rate drop); we compare the metrics at that
# epoch with the last one.

# %%
records = history.records
tpt = history.terminal_epoch
if tpt is None:
    raise RuntimeError("the run never reached 100% training accuracy: raise `max_epochs`")
start, end = history.at(tpt), records[-1]
rows = [
    ("NC1", "train_nc1"), ("NC2 equinorm (means)", "train_nc2_equinorm_means"),
    ("NC2 equiangular (means)", "train_nc2_equiangular_means"),
    ("NC2 max-angle (means)", "train_nc2_max_angle_means"),
    ("NC3 self-duality", "train_nc3_self_duality"),
    ("NC4 mismatch", "train_nc4_ncc_mismatch"),
    ("train CE", "train_loss"), ("p_min", "train_p_min"),
    ("scale-free margin", "train_scale_free_margin"), ("test accuracy", "test_accuracy"),
]
columns = ["epoch 0", f"epoch {tpt}", f"epoch {end['epoch']}"]
print(f"{'quantity':26s}" + "".join(f" {c:>11s}" for c in columns))
for label, key in rows:
    print(f"{label:26s} {records[0][key]:11.4g} {start[key]:11.4g} {end[key]:11.4g}")

# %% tags=["hide-input"]
glue("ch2_tpt_epoch", str(tpt), display=False)
glue("ch2_last_epoch", str(end["epoch"]), display=False)
glue("ch2_nc1_start", f"{start['train_nc1']:.3g}", display=False)
glue("ch2_nc1_end", f"{end['train_nc1']:.3g}", display=False)
glue("ch2_pmin_end", f"{end['train_p_min']:.3g}", display=False)
glue("ch2_sf_end", f"{end['train_scale_free_margin']:.3f}", display=False)
glue("ch2_test_start", f"{100 * start['test_accuracy']:.1f}%", display=False)
glue("ch2_test_end", f"{100 * end['test_accuracy']:.1f}%", display=False)
glue("ch2_nc4_end", f"{100 * end['train_nc4_ncc_mismatch']:.2f}%", display=False)

# %% [markdown]
# Training accuracy first reached 100% at epoch {glue:text}`ch2_tpt_epoch`. From there to epoch
# {glue:text}`ch2_last_epoch`, NC1 went from {glue:text}`ch2_nc1_start` to
# {glue:text}`ch2_nc1_end`, the classifier and the nearest-centre
# rule disagree on {glue:text}`ch2_nc4_end` of the training images, and test accuracy moved from
# {glue:text}`ch2_test_start` to {glue:text}`ch2_test_end`. Collapse at this scale is partial: the
# features are far from a single point per class, which is typical of a small network on 2 000
# images and worth keeping in mind when the later chapters lean on the *idealized* collapsed geometry.
#
# ## Verdict: does NC1 keep falling in the terminal phase?
#
# **Rule, fixed before the numbers.** The claim (Papyan et al., restated in Gao et al.'s Section 3)
# is that variability keeps collapsing after the training set is fitted. We compute the factor
# $F = \mathrm{NC1}(t_0)/\mathrm{NC1}(t_{\rm end})$ between the first epoch $t_0$ with 100%
# training accuracy and the last epoch, and its 95% bootstrap interval: the training samples are
# resampled with replacement within each class, the *same* resample at both epochs, and NC1 is
# recomputed. The claim **holds** if the interval lies above 1, is **violated** if it lies below 1
# (NC1 grew), and is **not distinguishable** from sampling noise if it contains 1; a run that never
# reaches a terminal phase is **untestable**. **Control:** the same computation after each
# training image's features at the two epochs are exchanged by a coin flip: the two sets are then
# exchangeable, the factor is 1 by construction, and a calibrated interval must contain 1 (it
# would miss in 5% of draws). The interval
# measures the sampling noise of NC1 on 2 000 images, not the seed; the book is rebuilt with other
# seeds to check that the label does not flip.

# %%
from nclib.decisions import decide_nc
from nclib.evidence import nc1_drop, swap_epochs

y_train = train_set.y.numpy()
drop = nc1_drop(snapshots.start, snapshots.last, y_train, seed=seed)
swapped = swap_epochs(snapshots.start, snapshots.last, seed=seed)
control = nc1_drop(*swapped, y_train, seed=seed)
verdict = decide_nc(drop, control, snapshots.start_epoch, snapshots.last_epoch)
verdict.glue("nc")
print(verdict.text())
glue("ch2_nc1_factor", f"{drop['factor']:.2f}", display=False)
glue("ch2_nc1_ci", f"[{drop['lo']:.2f}, {drop['hi']:.2f}]", display=False)
glue("ch2_ctrl_factor", f"{control['factor']:.2f}", display=False)
glue("ch2_ctrl_ci", f"[{control['lo']:.2f}, {control['hi']:.2f}]", display=False)

# %% [markdown]
# NC1 fell by a factor {glue:text}`ch2_nc1_factor` (95% interval {glue:text}`ch2_nc1_ci`) through
# the terminal phase; with the epochs exchanged at random the same computation gives
# {glue:text}`ch2_ctrl_factor` ({glue:text}`ch2_ctrl_ci`). Verdict on NC1 in the terminal phase:
# **{glue:text}`verdict_nc`**.
#
# The paper's Figure 3 plots cross-entropy against $p_{\min}$. The same view for this run is below
# ({numref}`fig-ch2-margins`), with the scale-free margin under it: watch $p_{\min}$ cross zero
# when the last training samples are fitted, and whether the scale-free margin, which no rescaling
# can inflate, keeps rising in the grey band.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Top: the training cross-entropy (blue, log scale, left axis) and $p_{\\min}$ (red, right axis); bottom: the scale-free margin; the terminal phase is shaded in both. Watch $p_{\\min}$ cross its dotted zero line and whether the scale-free margin keeps rising in the grey band.", "name": "fig-ch2-margins"}}
margins_figure(history)
plt.show()

# %% [markdown]
# At the last epoch $p_{\min}$ = {glue:text}`ch2_pmin_end` and the scale-free margin is
# {glue:text}`ch2_sf_end`, against {glue:text}`etf_scale_free` for perfectly collapsed features on a
# simplex ETF. $p_{\min}$ is negative until the training set is fitted and jumps around while a few
# hard samples flip; {doc}`intro` lists the chapters that put these margins to work in the paper's
# bounds.
