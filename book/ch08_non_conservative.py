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
# # Non-conservative generalization
#
# The second claim of {cite:t}`gao2023demystifying` (Section 4.2) is that collapsed solutions do not
# all generalize alike. Two simplex ETFs are *equivalent* when one is the other with its columns
# permuted ($M^*P$) or its feature space rotated ($RM^*$), as {prf:ref}`Definition 4.7 <def-47>`
# (stated in chapter 5) makes precise.
#
# Their Section 5.2 draws one simplex ETF $M^*$, ten random permutations $M^*P_i$ and ten random
# rotations $R_iM^*$, fixes the classifier of a network to each (following
# {cite:t}`yang2022inducing`, so that the features collapse onto that very ETF), trains all of them
# *with the same random seed* into the terminal phase, and compares their test accuracy (Figure 4)
# and test cross-entropy (Figure 5) in box plots. The boxes have visible spread, which the paper
# calls **non-conservative generalization**: the same training performance, the same collapse,
# different generalization. Where $C > d$ and no simplex ETF fits, the classifier is the structure
# that minimizes cross-entropy on the unconstrained feature model instead.
#
# A box plot of one seed cannot say whether that spread is caused by the classifier. Changing the
# classifier changes every gradient from the first step on, so the ten runs follow ten different
# optimization paths, just as ten seeds would. This chapter re-runs the experiment and adds the
# control the paper lacks: the same $M^*$ under several seeds, and grids of classifiers × seeds,
# one for permutations and one for rotations, analysed with a two-way analysis of variance and a
# permutation test whose power is computed before its verdict is read.

# %% tags=["parameters"]
scale = "cpu"              # label of this run: cpu (book build), tiny, reference or paper
device = "cpu"
results_dir = ""           # "" keeps runs in memory; `make experiments` sets a folder
recorded_scale = "paper"   # recorded results shown at the end of the chapter
results_root = ""          # where recorded results are read; "" for results/
deterministic = False
data_root = ""             # Fashion-MNIST or CIFAR root; "" for nclib.data's defaults
cpu_threads = 1            # torch threads; 1 avoids thrashing on shared cores
backbones = ["mlp"]
datasets = ["fashion_mnist"]
widths = {"mlp": 128, "small_cnn": 16}   # hidden width of the CPU-scale backbones
per_class_train = 50       # training images per class; 0 for the full split
per_class_test = 100
feature_dim = 32           # d with d ≥ C − 1: a simplex ETF; 0 for the backbone's width
small_dim = 5              # the C > d case with this d; 0 skips it
n_permutations = 10        # M* P_i at the main seed
n_rotations = 10           # R_i M* at the main seed
n_seeds = 6                # M* under seeds seed, seed + 1, and so on
grid_permutations = 6      # permutation grid rows: M* and the first P_i
grid_rotations = 6         # rotation grid rows: M* and the first R_i
small_grid_permutations = 6  # permutation grid rows in the C > d case (0: none)
small_grid_rotations = 0   # rotation grid rows in the C > d case (0: none)
grid_seeds = 6             # grid columns: first seeds (7 × 6, power 0.91 at τ equal to σ)
control_small_dim = True   # also run the seed control and the grid for C > d
head_seed = 0              # draws M*, the P_i and the R_i
logit_scale = 1.0
ufm_steps = 3000           # projected-gradient steps for the C > d structure
epochs = 30
batch_size = 32
lr = 0.02
momentum = 0.9
weight_decay = 5e-4
milestones = [20]
fit_until = 1.0            # past `epochs` until train accuracy ≥ this; 0: fixed budget
max_epochs = 120           # cap on training until fit (a clear error past it)
augment = ""
amp = False
channels_last = False
eval_batch_size = 1000
measure_window = 1         # dense measuring after the fit and at the end (reads: last)
seed = 0
batched = True             # each seed's models in one vmapped step (False: one by one)
max_models = 0             # at most this many models per batched step; 0: no limit
compare_epochs = 2         # epochs of the batched-versus-sequential check; 0 skips it
compare_models = 11        # models in that check (the main seed's first); 0: all
identity_epochs = 10       # epochs of the float64 check of a rotated head
n_resamples = 9999         # permutation-test resamples
reuse_from = []            # experiments whose records of the same runs are copied here

# %%
import dataclasses
import time

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from nclib import report, training_checks
from nclib.etf import (describe_structure, random_permutation, random_rotation,
                       simplex_etf, ufm_structure)
from nclib.experiments import (experiment_setup, load_datasets, load_results,
                               notebook_helpers, record_plan, run_group, sibling_results)
from nclib.records import RunSpec
from nclib.models import build_backbone
from nclib.report_plots import plot_boxes, plot_gaps, plot_grids, plot_power
from nclib.stats import f_test_power
from nclib.sweep import equivalent_classifiers, rotation_between, sweep_models
from nclib.train import TrainConfig

glue, display = notebook_helpers()  # myst_nb / IPython, or printing stand-ins
dev, store, prov = experiment_setup(device, results_dir, cpu_threads, deterministic)
reuse = sibling_results(reuse_from, scale)  # another design's runs: not retrained

# %%
def config_for(s, **changes):
    """The training configuration of seed s (it fixes data order and augmentation)."""
    return dataclasses.replace(TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, milestones=tuple(milestones), seed=s,
        augment=augment or None, amp=amp, channels_last=channels_last,
        eval_batch_size=eval_batch_size, measure_window=measure_window,
        until_accuracy=fit_until or None,
        max_epochs=max_epochs if fit_until else None), **changes)


def backbone_fn(backbone, train_set, d):
    shape = tuple(train_set.x.shape[1:])
    return lambda: build_backbone(backbone, shape, d, widths.get(backbone))


data = load_datasets(datasets, data_root=data_root or None, seed=seed, device=dev,
                     per_class_train=per_class_train, per_class_test=per_class_test)
seeds = [seed + i for i in range(max(n_seeds, grid_seeds, 1))]

# %% [markdown]
# ## Two facts before training
#
# **A permutation of a simplex ETF is a rotation of it.** The Gram matrix of a simplex ETF,
# $\alpha^2\frac{C}{C-1}(I-\frac1C\mathbb 1\mathbb 1^\top)$, is unchanged by $P^\top(\cdot)P$, and two
# sets of vectors with the same Gram matrix differ by an orthogonal map. So for an exact simplex
# ETF the two kinds of equivalence in Definition 4.7 are one: $M^*P = QM^*$ for some orthogonal $Q$,
# which orthogonal Procrustes finds. The structure used when $C > d$ is different: its Gram matrix
# is not invariant under permutations, and a permutation is no rotation.

# %% tags=["hide-input"]
C0 = 10
M_etf = simplex_etf(C0, feature_dim or 32, generator=head_seed)
P0 = random_permutation(C0, generator=head_seed + 1)
res_etf = rotation_between(M_etf, M_etf @ P0)[1]
glue("ch8_procrustes_etf", f"{res_etf:.0e}", display=False)
if small_dim and small_dim < C0 - 1:
    M_ufm = ufm_structure(C0, small_dim, steps=ufm_steps, generator=head_seed)
    res_ufm = rotation_between(M_ufm, M_ufm @ P0)[1] / M_ufm.norm().item()
    glue("ch8_procrustes_ufm", f"{res_ufm:.2f}", display=False)
    glue("ch8_ufm_shape", describe_structure(M_ufm), display=False)
else:
    glue("ch8_procrustes_ufm", "n/a", display=False)
    glue("ch8_ufm_shape", "nothing: the C > d case was skipped (small_dim = 0)",
         display=False)

# %% [markdown]
# The Procrustes residual $\lVert QM^* - M^*P\rVert$ for the simplex ETF is
# {glue:text}`ch8_procrustes_etf` (rounding error), against a relative residual of
# {glue:text}`ch8_procrustes_ufm` for the $C > d$ structure.
#
# **A rotation of the classifier is a rotation of the last layer's initialisation.** When the
# backbone ends in a linear layer $z = Wh + b$ (as the small networks here do), a network with head
# $RM$ computes $z^\top RM = (R^\top z)^\top M$: the same function as the network with last layer
# $(R^\top W, R^\top b)$ and head $M$. SGD with momentum and weight decay commutes with that
# orthogonal change of variables, so training with head $RM$ from the initialisation $(W, b)$ *is*
# training with head $M$ from $(R^\top W, R^\top b)$. This is an identity, so it gets a check that
# could fail: both trainings run for {glue:text}`ch8_identity_epochs` epochs in float64, and the
# identity **holds** if their test logits agree to a relative $10^{-6}$, and is **violated**
# otherwise. The control is the training with head $M$ from the *unrotated* $(W, b)$, which is a
# different function and must differ by far more than the tolerance (else the check could not
# tell trainings apart and is untestable).

# %% tags=["hide-input"]
first = next(iter(data.values()), None)
# backbone → Verdict: the linear-ended MLP, and the MLP with a ReLU after it
identity = {}
for backbone, name in (("mlp", "ch8_identity"), ("mlp_relu", "ch8_identity_relu")):
    if first is not None and identity_epochs > 0:
        d0 = feature_dim or 32
        M0 = simplex_etf(first[0].num_classes, d0, generator=head_seed)
        R0 = random_rotation(d0, generator=head_seed)
        budget = config_for(seed, epochs=identity_epochs, until_accuracy=None,
                            max_epochs=None)
        # both MLPs at the width of chapter 8's (`widths` names only "mlp")
        net = lambda b=backbone: build_backbone(b, tuple(first[0].x.shape[1:]), d0,
                                                widths.get("mlp"))
        gaps = training_checks.identity_check(net, M0, R0, seed, *first, budget)
        identity[backbone] = training_checks.decide_identity(gaps["identity"],
                                                             gaps["control"])
    else:
        identity[backbone] = training_checks.decide_identity(float("nan"), float("nan"))
    identity[backbone].glue(name, glue)
v_identity = identity["mlp"]
glue("ch8_identity_epochs", str(identity_epochs), display=False)

# %% [markdown]
# **The identity {glue:text}`verdict_ch8_identity`** for the MLP whose last layer is linear:
# {glue:text}`sure_ch8_identity`. Where it holds, swapping a simplex ETF for a permuted or rotated
# one at a fixed seed changes nothing but the initial draw of the last layer (a permutation of a
# simplex ETF being a rotation of it), and whatever spread such runs show is spread from
# initialisation, the kind a change of seed also produces. If that draw is itself
# rotation-invariant (a Gaussian last layer, the backbone `mlp_gauss`), a permuted head cannot
# change the distribution of the trained network at all: an exact null, which chapter 10 uses as
# its negative control.
#
# The paper's networks (VGG, ResNet, DenseNet) produce their features after a ReLU and pooling.
# The same check on the MLP with a ReLU after its last layer (`mlp_relu`, features in the positive
# orthant), rotating the same layer: **{glue:text}`verdict_ch8_identity_relu`**
# ({glue:text}`key_ch8_identity_relu`). Expected, since $\mathrm{ReLU}(R^\top Wh + R^\top b)$ is
# not $R^\top\mathrm{ReLU}(Wh+b)$: for such a backbone a rotated head is no change of variables,
# and the question whether equivalent classifiers generalize alike is open. The experiment below
# measures instead of arguing; chapter 10 asks it at reference scale on collapsed networks.
#
# ## The experiment
#
# For each backbone and dataset: $M^*$ (a unit-norm simplex ETF with $d$ = {glue:text}`ch8_d`, or the
# $C > d$ structure with $d$ = {glue:text}`ch8_small_d`), {glue:text}`ch8_n_perm` permutations and
# {glue:text}`ch8_n_rot` Haar rotations, all trained with seed {glue:text}`ch8_seed`; the same $M^*$
# under {glue:text}`ch8_n_seeds` seeds; and two grids, $M^*$ with its first
# {glue:text}`ch8_grid_perm` permutations and $M^*$ with its first {glue:text}`ch8_grid_rot`
# rotations, each × the first {glue:text}`ch8_grid_seeds` seeds. A seed sets the initialisation,
# the order of the mini-batches and the augmentation. Runs shared between the designs are trained
# once; the models of one seed share their data order and are trained together (batched in one
# vmapped step when `batched` is set, {glue:text}`ch8_batched_mode` in this build), each group
# until every model in it fits its training set.

# %%
def specs_for(backbone, dataset, train_set, test_set, d, with_control):
    """{seed: [RunSpec]} of one setting (report.design: which classifier, which seed)."""
    C = train_set.num_classes
    structure, heads = equivalent_classifiers(C, d, n_permutations, n_rotations,
                                              head_seed, ufm_steps)
    etf = structure == "simplex_etf"
    perm_rows = grid_permutations if etf else small_grid_permutations
    rot_rows = grid_rotations if etf else small_grid_rotations
    control, grid = (seeds[:n_seeds], seeds[:grid_seeds]) if with_control else ([], [])
    plan = report.design(heads, seed, control, grid, perm_rows, rot_rows)
    common = dict(experiment="non_conservative", backbone=backbone, dataset=dataset,
                  C=C, d=d, structure=structure, head_seed=head_seed,
                  width=widths.get(backbone), logit_scale=logit_scale,
                  n_train=len(train_set), n_test=len(test_set),
                  ufm_steps=ufm_steps if structure == "ufm" else None)

    def spec(h, s):
        params = dict(common, kind=h.kind, index=h.index, seed=s,
                      config=config_for(s).to_dict())
        return RunSpec(report.run_name((backbone, dataset, d), h.label, s), params, h.M)

    return {s: [spec(h, s) for h in hs] for s, hs in plan.items()}


# %%
groups = []  # (train_set, test_set, backbone, d, seed, specs)
for dataset, (train_set, test_set) in data.items():
    for backbone in backbones:
        width = backbone_fn(backbone, train_set, None)().feature_dim
        dims = [(feature_dim or width, True)]
        if small_dim and small_dim < train_set.num_classes - 1:
            dims.append((small_dim, control_small_dim))
        for d, control in dims:
            plan = specs_for(backbone, dataset, train_set, test_set, d, control)
            groups += [(train_set, test_set, backbone, d, s, sp)
                       for s, sp in plan.items()]
groups.sort(key=lambda g: g[4])  # seed by seed: a partial sweep holds every setting alike

# %%
record_plan(store, [sp for g in groups for sp in g[-1]], {"scale": scale})
t_start = time.perf_counter()
runs = []  # (params, History) of every live run
recorded_sweep = scale in ("reference", "paper")  # long sweeps show progress and ETA
sweep = tqdm(total=sum(len(g[-1]) for g in groups), desc="runs",
             disable=not recorded_sweep)
for train_set, test_set, backbone, d, s, specs in groups:
    build = lambda pending, f=backbone_fn(backbone, train_set, d), s=s: sweep_models(
        f, [sp.head for sp in pending], s, logit_scale)
    out = run_group(specs, build, train_set, test_set, config_for(s), store=store,
                    batched=batched, max_models=max_models or None,
                    progress=recorded_sweep, prov=prov, reuse=reuse)
    runs += [(sp.params, out[sp.run_id]) for sp in specs]
    sweep.update(len(specs))
sweep.close()
live_seconds = time.perf_counter() - t_start
if store is not None:
    store.write_csv()
print(f"{len(runs)} runs in {len(groups)} groups, {live_seconds:.0f} s")

# %% tags=["hide-input"]
for name, value in dict(
        d=feature_dim or "the backbone's width", small_d=small_dim or "(skipped)",
        n_perm=n_permutations, n_rot=n_rotations, seed=seed, n_seeds=n_seeds,
        grid_perm=grid_permutations, grid_rot=grid_rotations, grid_seeds=grid_seeds,
        small_grid_shape=(f"{small_grid_permutations + 1} × {grid_seeds}"
                          if small_grid_permutations else "none: seed control only"),
        n_runs=len(runs), n_groups=len(groups), live_minutes=f"{live_seconds / 60:.1f}",
        batched_mode="batched" if batched else "one after the other").items():
    glue(f"ch8_{name}", str(value), display=False)

# %% [markdown]
# ### Is batched training the same computation as sequential training?
#
# Every run above could have been trained alone with the plain loop (`nclib.train.train`) or
# together with the other models of its seed in one vmapped step (`nclib.sweep.train_batched`).
# The two must be the same computation up to the order of floating-point additions. On another
# machine, all but one of the models trained both ways for two epochs agreed to rounding error,
# and that one differed by more than an accuracy point. That is either a fault of the batched path
# or chaos: training amplifying a rounding difference. The two can be told apart by precision. A
# fault does not care whether the arithmetic is float32 or float64; amplified rounding starts from
# $10^{-16}$ instead of $10^{-7}$ in float64 and stays invisible. So the main seed's models are
# trained for
# {glue:text}`ch8_compare_epochs` epochs batched and sequentially, in float32 and in float64, and,
# as the control, sequentially once more in float32 on training inputs perturbed by noise of
# $10^{-7}$ (the size of a rounding error). The gap between two trainings is the largest relative
# difference of their test logits. **Rule**: the batched path **holds** (is the same computation)
# if every float64 gap is at most $10^{-6}$, and is **violated** (faulty) otherwise; the float32
# gaps are then read beside the control's. This check tests the batched path whatever `batched`
# is set to for the runs above.

# %%
check = None
if groups and compare_epochs > 0:
    train_set, test_set, backbone, d, s, specs = groups[0]
    heads = [sp.head for sp in specs][: compare_models or None]
    budget = config_for(s, epochs=compare_epochs, until_accuracy=None, max_epochs=None)
    check = training_checks.batched_check(
        backbone_fn(backbone, train_set, d), heads, s, train_set, test_set, budget,
        logit_scale=logit_scale, max_models=max_models or None)
v_batched = training_checks.decide_batched(*(check[k] if check else [] for k in
                                             ("batched32", "noise32", "batched64")))
v_batched.glue("ch8_batched", glue)
print(v_batched.label, "—", v_batched.key)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The relative gap between the test logits of two trainings of the same model, one dot per model, on a log scale: batched against sequential in float32, the rounding-noise control in float32, and batched against sequential in float64. Read the height of the float64 column against the two float32 columns.", "name": "fig-ch8-gaps"}}
glue("ch8_compare_epochs", str(compare_epochs), display=False)
if check is not None:
    plot_gaps(check, "gaps between two trainings of the same model, one dot per model")
    plt.show()
    sec = check["seconds"]
    glue("ch8_batched_ratio", f"{100 * sec['batched'] / sec['sequential']:.0f}%",
         display=False)
    glue("ch8_noise_acc", f"{max(check['acc_noise32']):.1f}", display=False)
    glue("ch8_batched_acc", f"{max(check['acc32']):.1f}", display=False)
    glue("ch8_check_models", str(len(check["batched32"])), display=False)
else:
    for name in ("batched_ratio", "noise_acc", "batched_acc", "check_models"):
        glue(f"ch8_{name}", "n/a", display=False)
glue("ch8_device", prov["device_name"], display=False)

# %% [markdown]
# {numref}`fig-ch8-gaps` puts the two precisions side by side. **The batched path
# {glue:text}`verdict_ch8_batched`**: {glue:text}`sure_ch8_batched`. Beside it, the control:
# {glue:text}`control_ch8_batched`. In final test accuracy after {glue:text}`ch8_compare_epochs`
# epochs, the largest batched-versus-sequential difference is {glue:text}`ch8_batched_acc` points
# and the largest difference caused by rounding-level input noise alone is
# {glue:text}`ch8_noise_acc` points, over {glue:text}`ch8_check_models` models. A model that
# differs after two epochs is a model whose training is chaotic, not a fault: float32 training
# amplifies a $10^{-7}$ perturbation into a visible change for some models, and the batched path
# only supplies such a perturbation (it adds in a different order). The batched float32 training
# took {glue:text}`ch8_batched_ratio` of the sequential time on this machine
# ({glue:text}`ch8_device`).
#
# ## Figures 4 and 5, with a seed box
#
# Test accuracy (Figure 4) and test cross-entropy (Figure 5) after the last epoch. Beside the
# paper's two boxes (permutations and rotations, one seed) stands the control box: $M^*$ under
# different seeds. The lower panels show the training accuracy and cross-entropy of the same
# models, to confirm that every model reached the terminal phase.

# %%
summaries = report.summarise_settings(runs, main_seed=seed, n_resamples=n_resamples)
by_structure = {Sk.structure: Sk for Sk in summaries.values()}
S, S2 = by_structure.get("simplex_etf"), by_structure.get("ufm")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The paper's Figures 4 and 5 with a seed box, for the simplex ETF: final test accuracy, test cross-entropy, training accuracy and training cross-entropy, one box per sample (permutations and rotations at one seed, $M^*$ across seeds), the runs as red dots. Compare the width of the first two boxes with the seed box.", "name": "fig-ch8-boxes"}}
if S is not None:
    plot_boxes(S, S.title)
    plt.show()
else:
    print("no dataset could be loaded: nothing to plot")

# %% [markdown]
# Each box holds the final values of one sample, the runs drawn as red dots: compare the width of
# the first two boxes (the paper's) with the third (seeds only). The spread that the paper reads as
# non-conservative generalization is only evidence of it if the classifier boxes are wider than the
# seed box, or, more sharply, if a given classifier does better or worse *in every seed*. The
# second question is the grid's.
#
# ## The grids: classifiers × seeds
#
# Each grid holds the final test accuracy of $M^*$ and its first permutations (or rotations) in
# rows, under the first {glue:text}`ch8_grid_seeds` seeds in columns. In the additive two-way model
# $y_{ij} = \mu + \alpha_i + \beta_j + \varepsilon_{ij}$, a classifier with a real effect
# $\alpha_i$ shifts its whole row; the seed effect $\beta_j$ shifts a column; the residual
# $\varepsilon_{ij}$, with sd $\sigma$, is the path noise. The permutations are drawn at random, so
# their effects are modelled as drawn too, with sd $\tau$: $\tau = 0$ is "the classifier does not
# matter".
#
# **Rule for Section 5.2** (written before the numbers). The permutation test shuffles the
# classifiers within each seed {glue:text}`ch8_n_resamples` times and compares the two-way $F$ of
# the rows with its shuffled values. If its $p \le 0.05$, the claim **holds**: some classifiers
# generalize better than others beyond seed noise, and we report $\hat\tau$ with a 95% interval. If
# $p > 0.05$, the verdict is **not distinguishable from seed noise**, provided the grid would have
# detected an effect with $\tau$ equal to the seed sd (the sd of a fixed classifier's test accuracy
# across seeds, pooled over the grid's rows) with probability at least 0.8; the sureness is then
# the smallest $\tau$ detected with probability 0.8, computed by simulating the test on grids of
# the same shape with the measured residual $\sigma$.
# If the grid was too weak for that, the verdict is **untestable at this size**. An equivalence
# statement (the effect is smaller than seed noise) is made only when the one-sided 95% upper
# bound on $\tau$ lies below the seed sd. The grid size was chosen for this rule: with
# {glue:text}`ch8_grid_shape` classifiers × seeds the $F$-test detects $\tau = \sigma$ with
# probability {glue:text}`ch8_design_power` (the 5 × 5 grid this chapter used before:
# {glue:text}`ch8_design_power_5x5`), a margin that keeps the power above 0.8 when the measured
# seed sd comes out somewhat below $\sigma$; the permutation test's power, simulated, is in the
# figure below.

# %% tags=["hide-input"]
glue("ch8_n_resamples", f"{n_resamples:,}", display=False)
grid_rows = (grid_permutations or grid_rotations) + 1  # or a rotation-only design's grid
glue("ch8_grid_shape", f"{grid_rows} × {grid_seeds}", display=False)
glue("ch8_design_power", f"{f_test_power(grid_rows, grid_seeds, 1.0):.2f}"
     if min(grid_rows, grid_seeds) >= 2 else "0 (no grid is planned)", display=False)
glue("ch8_design_power_5x5", f"{f_test_power(5, 5, 1.0):.2f}", display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The classifiers-by-seeds grids of final test accuracy for the simplex ETF, one heat map per grid with every cell labelled: a row is one classifier ($M^*$ and its permutations or rotations), a column one seed. A classifier effect would show as a row lighter or darker than the others in every column.", "name": "fig-ch8-grids"}}
if S is not None and S.grids:
    plot_grids(S, S.title)
    plt.show()

# %% tags=["hide-input"]
if S is not None and S.grids:
    for ga in S.grids.values():
        display(report.anova_table(ga, S.title))

# %% [markdown]
# In each heat map a row is one classifier and a column one seed; a classifier effect would show
# as a row that is lighter (or darker) than the others in every column. The tables below the maps
# give the two-way analysis of variance of each grid, with the permutation test's $p$ beside the
# $F$-test's.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The power of the permutation test on each grid against the sd of the classifier effect, in test-accuracy points: the probability that the grid would have detected an effect of that size. The seed sd is dotted in red and the target power dashed; the triangles mark the smallest effect detected with the target power. Read where each curve crosses the dashed line against the red one.", "name": "fig-ch8-power"}}
v_perm = report.decide_nc_gen(S, "permutation")
v_rot = report.decide_nc_gen(S, "rotation")
v_perm.glue("nc_gen", glue)
v_rot.glue("nc_rot", glue)
# the reading of the verdict, in the chapter's words
READING = {
    "holds": (
        "Here some classifiers do better than others consistently across seeds, "
        "beyond what a change of optimization path alone produces, which supports the "
        "paper's reading; the size of the effect is its sd τ̂ above, to be weighed "
        "against the seed sd."),
    "not distinguishable from seed noise": (
        "At this scale the spread that the paper reads as non-conservative "
        "generalization is the spread any change of optimization path produces, as "
        "the two facts above predict for networks ending in a linear layer; an effect "
        "large enough to matter (the detectable size above) would have shown. The "
        "paper's boxes come from a single seed and cannot separate the two; its claim "
        "needs the grid at paper scale (below) before it can stand."),
    "untestable at this size": (
        "At this scale the grid cannot decide: the experiment could not have detected "
        "an effect as large as the seed noise, so its null result is absence of "
        "evidence, not evidence of absence."),
    "no runs": (
        "No runs: no dataset could be loaded or the case was skipped."),
}
numbers = report.chapter8_numbers(S, v_perm)
for name, value in numbers.items():
    glue(f"ch8_{name}", value, display=False)
reading = READING.get(numbers["label"], v_perm.detail or numbers["label"])
glue("ch8_interpretation", reading, display=False)
if S is not None and S.grids:
    plot_power(S, "power of the permutation test on each grid")
    plt.show()

# %% [markdown]
# The power curve is the sureness of a null result: for each size of the classifier effect
# (horizontal axis, sd $\tau$ in test-accuracy points) the probability that the grid's test would
# have detected it, with the seed sd dotted in red and the triangles marking the smallest effect
# detected with probability 0.8.
#
# With the simplex ETF, {glue:text}`ch8_n_tpt` of {glue:text}`ch8_n_models` models end at 100%
# training accuracy (largest final training cross-entropy {glue:text}`ch8_max_train_ce`; groups
# trained for {glue:text}`ch8_epochs_trained` epochs), so the comparison is between models in the
# terminal phase, as in the paper. Their test accuracies do spread: the standard deviation is
# {glue:text}`ch8_sd_perm` points across the permutations (range {glue:text}`ch8_range_perm`
# points) and {glue:text}`ch8_sd_rot` across the rotations, which is the paper's observation. But
# the same classifier under different seeds spreads by {glue:text}`ch8_sd_seed` points; by the
# Brown–Forsythe test the spreads of permutations and seeds {glue:text}`ch8_bf_sentence`
# (p = {glue:text}`ch8_bf_p`).
#
# **Verdict on Section 5.2, permutations: {glue:text}`verdict_nc_gen`** ({glue:text}`key_nc_gen`).
# How sure: {glue:text}`sure_nc_gen`. Control: {glue:text}`control_nc_gen`.
#
# **Rotations: {glue:text}`verdict_nc_rot`** ({glue:text}`key_nc_rot`). How sure:
# {glue:text}`sure_nc_rot`. The identity above predicts this for a backbone ending in a linear
# layer: a rotated head is a re-drawn last layer, an effect of initialisation and nothing else.
#
# {glue:text}`ch8_interpretation`
#
# ## The C > d case
#
# With $d$ = {glue:text}`ch8_small_d` < $C - 1$ no simplex ETF exists and $M^*$ is the
# cross-entropy minimizer of the unconstrained feature model. Here it comes out with
# {glue:text}`ch8_ufm_shape`. Unlike a simplex ETF it treats class pairs unequally, so a permutation
# decides which classes get the largest separation, and it is no rotation (Procrustes residual
# above). If permutations matter anywhere, it should be here; the same rule decides, on a grid of
# $M^*$ and its first permutations × seeds ({glue:text}`ch8_small_grid_shape`; no rotation grid by
# default, `small_grid_rotations` = 0: a rotation is a re-drawn last layer here too).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Final test accuracy, test cross-entropy, training accuracy and training cross-entropy for the $C > d$ structure (the cross-entropy minimizer of the unconstrained feature model as $M^*$), one box per sample with the runs as red dots. Compare the width of the permutation box with the seed box.", "name": "fig-ch8-small-boxes"}}
v_small = report.decide_nc_gen(S2, "permutation")
v_small.glue("nc_gen_small", glue)
for name, value in report.chapter8_numbers(S2, v_small, prefix="small_").items():
    glue(f"ch8_{name}", value, display=False)
if S2 is not None:
    plot_boxes(S2, S2.title)
    plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The classifiers-by-seeds grid of final test accuracy for the $C > d$ structure: a row is $M^*$ or one of its permutations, a column one seed. As for the simplex ETF, look for a row that is lighter or darker than the others in every column.", "name": "fig-ch8-small-grids"}}
if S2 is not None and S2.grids:
    plot_grids(S2, S2.title)
    plt.show()

# %% [markdown]
# The boxes and the heat map read as above, for the $C > d$ structure. In these runs
# {glue:text}`ch8_small_n_tpt` of {glue:text}`ch8_small_n_models` models reached 100% training
# accuracy. The test accuracy spreads by {glue:text}`ch8_small_sd_perm` points (standard deviation)
# across permutations, {glue:text}`ch8_small_sd_rot` across rotations and
# {glue:text}`ch8_small_sd_seed` across seeds. **Verdict for C > d:
# {glue:text}`verdict_nc_gen_small`** ({glue:text}`key_nc_gen_small`); how sure:
# {glue:text}`sure_nc_gen_small`.

# %% [markdown]
# (ch8-recorded)=
# ## Recorded runs at paper scale
#
# `make experiments` runs this notebook on a GPU with VGG11, ResNet32 and DenseNet121 on
# CIFAR-10, CIFAR-100 (where present) and the full Fashion-MNIST, with the same designs, and
# records every run under `results/non_conservative/paper/`. ResNet32's features have $d = 64$, so
# on CIFAR-100 it is a $C > d$ case by itself. When such records exist they are analysed here by
# the same functions as the live run (`nclib.report`), with their provenance.

# %% tags=["hide-input"]
recorded = load_results("non_conservative", recorded_scale, results_root or None)
if recorded is None:
    glue("ch8_recorded_summary", f"No {recorded_scale}-scale runs are recorded in "
         "results/ yet, so the verdicts above rest on the CPU-scale runs of this build.",
         display=False)
    print(f"no {recorded_scale}-scale records under results/non_conservative/")
else:
    display(recorded.provenance_table())
    rec = report.summarise_settings(recorded.runs(), n_resamples=n_resamples)
    rec_verdicts = {k: {kind: report.decide_nc_gen(Sk, kind) for kind in Sk.grids}
                    for k, Sk in rec.items()}

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Final test accuracy, test cross-entropy, training accuracy and training cross-entropy of the recorded runs, one figure per recorded setting (named in its title), one box per sample with the runs as red dots. As above, compare the classifier boxes with the seed box."}}
if recorded is not None:
    for Sk in rec.values():
        plot_boxes(Sk, "recorded: " + Sk.title)
        plt.show()

# %% tags=["hide-input"]
if recorded is not None:
    caption = f"recorded {recorded_scale}-scale runs"
    display(report.summary_table(rec, rec_verdicts, caption))
    n = len(recorded.records)
    glue("ch8_recorded_summary", f"{n} {recorded_scale}-scale runs are "
         "recorded; the table above gives the verdicts per setting, with the provenance "
         "of the runs.", display=False)

# %% [markdown]
# {glue:text}`ch8_recorded_summary`
