"""The robustness chapter's analyses on the data set and the networks' weights (random
directions and their norms, the jet check, network gradients, spectra of the optimal attacks,
the capacity floor) and its figures.  Each analysis returns its figure data and numbers;
`analyses` runs them all in the chapter's order, and each figure is one function returning one
figure."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .. import analyses as stored_analyses
from .. import data, directions, experiments, paper, plots, report, robustness
from .. import store
from .. import terms as T
from ..claims import FULL_SETUP, LARGER
from ..experiments import Robust
from ..presets import Preset
from .robustness import (FAMILIES, FLOOR_WIDTHS, NORM_IMAGES, Robustness, SWEEP_LABELS, SWEEP_TITLES, larger_network,
                         larger_label, larger_sweep, long_results)


# --------------------------------------------------------------------------------------
# Analyses on the data set and the networks' weights

@functools.lru_cache(maxsize=1)
def _dataset(p: Preset) -> data.Dataset:
    """The preset's order-1 data set, read once for all analyses of the chapter."""
    return data.load(data.dataset_config(p, order=1), progress=False)


def _n_images(p: Preset) -> int:
    return min(p.n_test, p.attack_images)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _pair_cosines(x: torch.Tensor) -> torch.Tensor:
    """The scalar products of every two different rows of x, as unit vectors."""
    u = _unit(x.flatten(1))
    c = u @ u.T
    return c[~torch.eye(len(c), dtype=torch.bool, device=c.device)]


def _mean_pair_cosine(x: torch.Tensor) -> float:
    """Mean scalar product of two different unit vectors among the rows of x."""
    return float(_pair_cosines(x).mean())


def _network_gradients(exp, images: torch.Tensor, device) -> torch.Tensor:
    """grad N [n, 9, 1681] of a stored network, in float64."""
    return robustness.network_gradients(store.network(exp, device).double(), images)


HIGH_RINGS = 11  # radial_spectrum's rings from here on: above 10 cycles per image


@dataclass
class Directions:
    examples: dict  # family -> one draw [41, 41]
    spectra: dict  # family -> (k, power) of spectrum_images draws
    numbers: dict  # cos_low, rms_low, dims_low, spectrum_images, high_share_<family> (%)


def random_directions(s: Robustness, generator: torch.Generator) -> Directions:
    """One draw of each family (Fig. 4), the radial power spectra of spectrum_images draws, and
    the mean and root-mean-square scalar product of two draws of D_low (from `generator`, in
    that order)."""
    examples = {name: f(1, generator)[0] for name, f in FAMILIES.items()}
    spectra = {name: directions.radial_spectrum(f(s.preset.spectrum_images, generator)) for name, f in FAMILIES.items()}
    # signed, the mean shows whether draws share a direction (as gradients do); the root mean
    # square how concentrated they are: 1 / its square is their effective dimension (the
    # participation ratio of their covariance; 1681 for white noise)
    cos = _pair_cosines(directions.low(_n_images(s.preset), generator))
    ms = float(cos.square().mean())
    # each family's share of power above 10 cycles per image, where the attacks' shares are taken
    shares = {f"high_share_{name}": 100 * float(power[HIGH_RINGS:].sum() / power.sum())
              for name, (k, power) in spectra.items()}
    return Directions(examples, spectra, {"cos_low": float(cos.mean()), "rms_low": ms ** 0.5, "dims_low": 1 / ms,
                                          "spectrum_images": int(s.preset.spectrum_images), **shares})


@dataclass
class RobustCost:
    norms: dict  # family -> (n_i [9], c) of eq. (43) over the first NORM_IMAGES training images
    numbers: dict  # jet_error

    @property
    def table(self) -> report.Table:
        """n_i (smallest and largest of the nine) and c per family."""
        t = report.Table("", ["family", "smallest $n_i$", "largest $n_i$", "$c$"], formats={1: ".4f", 2: ".4f", 3: ".3f"})
        z_largest = True
        for f, (n_i, c) in self.norms.items():
            t.add(rf"$\mathcal{{D}}_{{\text{{{f}}}}}$", float(n_i.min()), float(n_i.max()), float(c))
            z_largest &= set(torch.as_tensor(n_i).argsort()[-3:].tolist()) == {2, 5, 8}
        if z_largest:
            t.note = "For both families the three largest $n_i$ are those of the $z$ coordinates."
        return t


def robust_cost(s: Robustness, generator: torch.Generator, device="cpu") -> RobustCost:
    """n_i and c of eq. (43) for D_low and D_mid, and the check that the extended forward pass
    gives grad N . D (relative to autograd, float32, on the first-derivative network)."""
    ds = _dataset(s.preset)
    n_norm = min(len(ds.train), NORM_IMAGES)
    grad_O_train = data.oracle_gradients(ds.train, n_norm)
    norms = {f: T.robust_norms(grad_O_train, FAMILIES[f](n_norm, generator).reshape(n_norm, -1))
             for f in ("low", "mid")}
    net = store.network(experiments.accuracy(s.preset, "first", s.preset.sweep_width), device)
    D = directions.low(8, generator, dtype=torch.float32).reshape(8, -1)
    x = ds.train.image[:8].reshape(8, -1).float()
    dN = net.jet_rows(torch.stack([x, D], 1), 1)[1].detach()
    by_autograd = torch.einsum("bkp,bp->bk", robustness.network_gradients(net, ds.train.image[:8].float()), D)
    jet_error = float((dN[:, 0] - by_autograd).abs().max() / by_autograd.abs().max())
    return RobustCost(norms, {"jet_error": jet_error})


@dataclass
class Gradients:
    vertices: torch.Tensor  # [n, 8, 3] the cubes of the test images
    panels: dict  # title -> grad of the first output [n, 1681] over the test images (the oracle's first)
    cosines: dict  # title -> cosine of each panel's gradient with grad O_1 [n]
    spectra: dict  # label -> (k, power) of the normalised grad N_1 (conventional) and grad O_1
    numbers: dict  # cos_grad, zero_gradient_v, cos_robust, cos_gauss, cos_jac, cos_conv


def gradients(s: Robustness, device="cpu") -> Gradients:
    """The first output's gradient on the first attack_images test images (Fig. 5): the oracle,
    robust (trade-off adj.), the best Gaussian and Jacobian networks, conventional training."""
    p, W = s.preset, s.preset.sweep_width
    ds, n = _dataset(p), _n_images(p)
    images = ds.test.image[:n].double()
    grad_O = data.oracle_gradients(ds.test, n)
    nets = {"robust,\ntrade-off adj.": experiments.robust(p, Robust(tradeoff=True), W),
            f"Gaussian,\n$\\sigma$ = {s.best['gaussian']:g}": experiments.gaussian_sweep(p, s.best["gaussian"]),
            f"Jacobian,\n$c^2$ = {s.best['jacobian']:g}": experiments.jacobian(p, s.best["jacobian"], W),
            "conventional": experiments.accuracy(p, "conventional", W)}
    panels = {"$\\nabla\\mathcal{O}_1$\n(oracle)": grad_O[:, 0],
              **{title: _network_gradients(exp, images, device)[:, 0] for title, exp in nets.items()}}
    cosines = {title: (_unit(g) * _unit(grad_O[:, 0])).sum(-1) for title, g in panels.items()}
    alignment = [float(c.mean()) for c in cosines.values()]
    spectra = {label: directions.radial_spectrum(_unit(x.flatten(1)).reshape(-1, 41, 41)) for label, x in
               ((r"$\nabla N_1$ (conventional)", panels["conventional"]), (r"$\nabla\mathcal{O}_1$", grad_O[:, 0]))}
    numbers = {"cos_grad": _mean_pair_cosine(panels["conventional"]),
               "zero_gradient_v": robustness.vulnerabilities(torch.zeros_like(grad_O), grad_O).v_max.mean().item(),
               "cos_robust": alignment[1], "cos_gauss": alignment[2], "cos_jac": alignment[3], "cos_conv": alignment[4]}
    return Gradients(ds.test.vertices[:n], panels, cosines, spectra, numbers)


@dataclass
class AttackSpectra:
    spectra: dict  # label -> (k, power) of the optimal attack D_max over the test images
    high_share: dict  # label -> share of that power above 10 cycles per image
    numbers: dict  # high_share_robust, high_share_conv (%)


def attack_spectra(s: Robustness, device="cpu") -> AttackSpectra:
    """Radial power spectra of D_max (eq. 34) of robust training (+ R_high at the sweep width),
    the best Gaussian network and conventional training, on the first attack_images test images."""
    p, W = s.preset, s.preset.sweep_width
    ds, n = _dataset(p), _n_images(p)
    images = ds.test.image[:n].double()
    grad_O = data.oracle_gradients(ds.test, n)
    nets = {"robust": experiments.robust(p, Robust(), W),
            f"best Gaussian, $\\sigma$ = {s.best['gaussian']:g}": experiments.gaussian_sweep(p, s.best["gaussian"]),
            "conventional": experiments.accuracy(p, "conventional", W)}
    if p.high_width == W:
        nets["robust + $R^{\\mathrm{I}}_{\\mathrm{high}}$"] = experiments.robust(p, Robust(high=True), W)
    spectra = {label: directions.radial_spectrum(robustness.vulnerabilities(
        _network_gradients(exp, images, device), grad_O).d_max.reshape(-1, 41, 41)) for label, exp in nets.items()}
    high_share = {label: float(power[HIGH_RINGS:].sum() / power.sum()) for label, (k, power) in spectra.items()}
    return AttackSpectra(spectra, high_share, {"high_share_robust": 100 * high_share["robust"],
                                               "high_share_conv": 100 * high_share["conventional"]})


@dataclass
class Capacity:
    floors: dict  # L -> mean floor of v_max (%) for L principal directions of the oracle gradients
    zero_network: float  # v_max (%) of a network with zero gradient
    own: dict  # width -> mean bound (%) from the first layer of the robust network of that width
    numbers: dict
    larger: dict | None = None  # the stored analysis at paper-small (analyses.capacity_bound), if any


def capacity_floors(s: Robustness, device="cpu") -> Capacity:
    """The first layer's bound on v_max (cubelib.capacity) on the first attack_images test
    images: with L principal directions of the training images' oracle gradients, and with the
    robust networks' own first layers (the stored analysis analyses.capacity_bound, so every
    preset's numbers come from one code path)."""
    p = s.preset
    found = stored_analyses.capacity_bound(p.name, device=device, floor_widths=FLOOR_WIDTHS, norm_images=NORM_IMAGES)
    floors = {int(L): v for L, v in found["floors"].items()}
    own = {int(w): row["own_floor"] for w, row in found["networks"].items()}
    W = p.sweep_width
    numbers = {"floor_W": floors[W], "floor_256": floors.get(256, float("nan")),
               "floor_1024": floors.get(1024, float("nan")), "zero_network": found["zero_network"], "own_W": own[W]}
    # the paper's smallest network at its own data, when its robust network and the analysis are stored
    larger = None if p.name in FULL_SETUP else stored_analyses.capacity_bound(LARGER, compute=False)
    if larger is not None:
        row = larger["networks"]["256"]
        numbers.update({"ps_cap_images": larger["images"], "ps_cap_floor": larger["floors"]["256"],
                        "ps_cap_own": row["own_floor"], "ps_cap_vmax": row["v_max"],
                        "ps_cap_name": row["name"], "ps_cap_zero": larger["zero_network"]})
    return Capacity(floors, found["zero_network"], own, numbers, larger)


# --------------------------------------------------------------------------------------
# All analyses of the chapter, in its order

@dataclass
class Analyses:
    directions: Directions
    gradients: Gradients
    cost: RobustCost
    spectra: AttackSpectra
    capacity: Capacity
    numbers: dict  # every analysis's numbers, for report.glue_all


def analyses(s: Robustness, device="cpu", seed: int = 0) -> Analyses:
    """Every analysis of the chapter: the random directions and the robust cost's norms draw
    from one generator seeded `seed`, in that order."""
    g = torch.Generator().manual_seed(seed)
    d = random_directions(s, g)
    grads = gradients(s, device)
    cost = robust_cost(s, g, device)
    spectra = attack_spectra(s, device)
    floors = capacity_floors(s, device)
    numbers = {**d.numbers, **grads.numbers, **cost.numbers, **spectra.numbers, **floors.numbers}
    return Analyses(d, grads, cost, spectra, floors, numbers)


# --------------------------------------------------------------------------------------
# Figures: each function draws one figure and returns it

VMAX = r"$\bar v_{\max}$"


def _family(name: str) -> str:
    return rf"$\mathcal{{D}}_{{\mathrm{{{name}}}}}$"


def plot_directions(a: Analyses):
    """Fig. 4 of the paper: one draw of each family of random directions."""
    fig, axes = plots.figure(1, 3, height=2.9)
    for ax, (name, D) in zip(axes, a.directions.examples.items()):
        plots.show_signed(ax, D, _family(name))
    return fig


def plot_spectra(a: Analyses):
    """Radial power spectra of the three families and of the first output's normalised gradients."""
    fig, ax = plots.figure(1, 1, height=3.0)
    for name, (k, power) in a.directions.spectra.items():
        ax.semilogy(k, power, label=_family(name))
    for label, (k, power) in a.gradients.spectra.items():
        ax.semilogy(k, power, "--", label=label)
    ax.set_xlabel("cycles per image")
    ax.set_ylabel("power (unit norm)")
    plots.legend_outside(ax, "right")
    plots.log_ticks(ax)
    return fig


def plot_sweeps(s: Robustness):
    """Figs. 6-7: error and vulnerabilities along the sigma and c^2 sweeps, against robust
    training; hollow squares: the stored points of `LARGER`'s sweeps (its smallest network)."""
    rob_t = s.robust(Robust(tradeoff=True)).metrics
    fig, axes = plots.figure(2, 2, height=2.7)
    for col, (method, sw) in enumerate(s.sweeps.items()):
        if found := larger_sweep(s, method):
            values = sorted(found)
            label = larger_label(found[values[0]].epochs)
            style = dict(ls="--", marker="s", mfc="none", color="0.35", lw=0.9)
            axes[0, col].plot(values, [found[v].e_test for v in values], **style, label=f"{label} (test)")
            axes[1, col].plot(values, [found[v].v_max_test for v in values], **style, label=f"{label} ({VMAX})")
        values = sw["values"]
        ax = axes[0, col]
        ax.plot(values, sw["e_train"], "o:", label="training")
        ax.plot(values, sw["e_test"], "o-", label="test")
        ax.axhline(rob_t["e_test"], color="k", ls="--", lw=0.8, label="robust, trade-off adj. (test)")
        ax.set_ylabel("e (%), clean images")
        ax.set_title(SWEEP_TITLES[method])
        ax = axes[1, col]
        for k, label in (("v_max_test", VMAX), ("v_sen_test", r"$\bar v_{\mathrm{sen}}$"),
                         ("v_inv_test", r"$\bar v_{\mathrm{inv}}$")):
            ax.plot(values, sw[k], "o-", label=label)
        ax.axhline(rob_t["v_max_test"], color="k", ls="--", lw=0.8, label=f"robust, trade-off adj. ({VMAX})")
        ax.set_ylabel("vulnerability (%), test")
        for ax in axes[:, col]:
            ax.set_xlabel(SWEEP_LABELS[method])
            ax.set_xscale("log" if method == "jacobian" else "linear")
            ax.set_yscale("log")
    for row in axes:  # one legend per row, with the entries of both columns (the larger preset's may be in one)
        entries = {}
        for ax in row[::-1]:
            entries.update({label: h for h, label in zip(*ax.get_legend_handles_labels())})
        plots.legend_outside(row[-1], "right", handles=list(entries.values()), labels=list(entries))
    plots.log_ticks(*axes.flat)
    return fig


def plot_gradients(a: Analyses, k: int = 0):
    """Fig. 5: the first output's gradient at test image `k`, with its cosine to the oracle's."""
    g = a.gradients
    fig, axes = plots.figure(1, len(g.panels), height=2.5)
    for ax, (title, grad) in zip(axes, g.panels.items()):
        cos = g.cosines[title]
        plots.show_signed(ax, grad[k].reshape(41, 41), title)
        plots.zoom(ax, g.vertices[k], 0.6)
        ax.set_xlabel(f"cos {cos[k]:.2f}\n(mean {cos.mean():.2f})", fontsize=9)
    return fig


def _curve_label(label: str) -> str:
    return label.replace("sigma", r"$\sigma$").replace("c^2", "$c^2$")


def plot_curves(s: Robustness):
    """Test error and v_max along training: robust, the best baselines, conventional."""
    fig, axes = plots.figure(1, 2, height=3.0)
    for label, cur in s.curves.items():
        if not cur.get("v_max_test"):
            continue  # a result stored before the curves carried v_max
        axes[0].semilogy(cur["epoch"], cur["e_test"], label=_curve_label(label))
        axes[1].semilogy(cur["epoch"], cur["v_max_test"], label=_curve_label(label))
    tradeoff = s.robust(Robust(tradeoff=True)).curves
    axes[0].semilogy(tradeoff["epoch"][-1:], tradeoff["e_test"][-1:], "k*", ms=9,
                     label="robust + 1 epoch $E_0 + E_1$")
    axes[1].semilogy(tradeoff["epoch"][-1:], tradeoff["v_max_test"][-1:], "k*", ms=9)
    axes[0].set_ylabel("test e (%)")
    axes[1].set_ylabel(f"test {VMAX} (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
    plots.legend_outside(axes[1], "right")
    plots.log_ticks(*axes)
    return fig


# the sweeps on the plane, with their strengths beside the points: Gaussian to the left of its
# curve, Jacobian above right
_SWEEP_STYLE = {"gaussian": ("o-", "C0", (-5, 0), "right", "center"), "jacobian": ("s-", "C1", (4, 2), "left", "bottom")}


def _plane_sweep(ax, method: str, values, e, v_max):
    marker, color, offset, ha, va = _SWEEP_STYLE[method]
    ax.plot(e, v_max, marker, ms=4, color=color, label=f"{SWEEP_TITLES[method]} ({SWEEP_LABELS[method]})")
    for x, ex, vx in zip(values, e, v_max):
        ax.annotate(f"{x:g}", (ex, vx), fontsize=7, xytext=offset, textcoords="offset points", ha=ha, va=va,
                    color=color)


def plot_plane(s: Robustness, a: Analyses):
    """Every network of the sweep width on the error-vulnerability plane; on the right, where
    both of its robust networks are stored, the same for `LARGER` (the paper's smallest network
    on its data) with the paper's own networks of that size."""
    p, W = s.preset, s.preset.sweep_width
    larger = larger_network(s, 3) is not None and larger_network(s, 4) is not None
    fig, axes = plots.figure(1, 2 if larger else 1, height=4.2, squeeze=False)
    ax = axes[0, 0]
    for method in ("gaussian", "jacobian"):
        sw = s.sweeps[method]
        _plane_sweep(ax, method, sw["values"], sw["e_test"], sw["v_max_test"])
    high = "$R^{\\mathrm{I}}_{\\mathrm{high}}$"
    points = {"robust": (Robust(), "k*"), "robust, trade-off adj.": (Robust(tradeoff=True), "r*")}
    if p.high_width == W:
        points.update({f"robust + {high}": (Robust(high=True), "kP"),
                       f"robust + {high}, trade-off adj.": (Robust(high=True, tradeoff=True), "rP")})
    for label, (kind, marker) in points.items():
        m = s.robust(kind).metrics
        ax.plot(m["e_test"], m["v_max_test"], marker, ms=10, label=label)
    if p.robust_long_epochs:
        for (label, marker), res in zip((("robust", "kX"), ("robust, trade-off adj.", "rX")), long_results(s)):
            ax.plot(res.e_test, res.v_max_test, marker, ms=8, label=f"{label}, {p.robust_long_epochs} epochs")
    for method, marker in (("conventional", "v"), ("first", "^")):
        m = s.accuracy[method].metrics
        ax.plot(m["e_test"], m["v_max_test"], marker, color="gray", ms=7,
                label={"conventional": "conventional training", "first": "first-derivative training"}[method])
    ax.axhline(a.numbers["zero_gradient_v"], color="gray", ls=":", lw=0.8, label="a network with zero gradient")
    ax.set_title(f"L = {W}, {p.name}")
    if larger:
        _plane_larger(axes[0, 1], s, a)
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("test e (%), clean images")
    axes[0, 0].set_ylabel(f"test {VMAX} (%)")
    entries = {}  # one legend, with the entries of both panels
    for ax in axes.flat:
        entries.update({label: h for h, label in zip(*ax.get_legend_handles_labels())})
    if larger:  # beside two panels the legend would squeeze them: below both
        fig.legend(list(entries.values()), list(entries), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3,
                   fontsize=7)
    else:
        plots.legend_outside(axes[0, 0], "right")
    plots.log_ticks(*axes.flat)
    return fig


def _plane_larger(ax, s: Robustness, a: Analyses):
    """`LARGER`'s stored sweeps and robust networks, its Table 5 network (the whole schedule)
    and the paper's Tables 3-5 networks of that size, 0.6M weights (hollow)."""
    for method in ("gaussian", "jacobian"):
        if found := larger_sweep(s, method):
            vals = sorted(found)
            _plane_sweep(ax, method, vals, [found[v].e_test for v in vals], [found[v].v_max_test for v in vals])
    for label, table, marker in (("robust", 3, "k*"), ("robust, trade-off adj.", 4, "r*")):
        r = larger_network(s, table)[1]
        ax.plot(r.e_test, r.v_max_test, marker, ms=10, label=label)
    if (t5 := larger_network(s, 5)) is not None:
        ax.plot(t5[1].e_test, t5[1].v_max_test, "o", color="C0", mfc="none", ms=7,
                label=f"Gaussian, σ = {experiments.TABLE5_SIGMA:g}, {t5[1].epochs} epochs (Table 5)")
    t4, t5p = paper.TABLE4[256], paper.TABLE5[256]
    for label, (e, v), marker, color in (("paper, Table 3", paper.TABLE3[256], "*", "k"),
                                         ("paper, Table 4", (t4["e"][1], t4["v_max"][1]), "*", "r"),
                                         ("paper, Table 5", (t5p["e"][1], t5p["v_max"][1]), "o", "C0")):
        ax.plot(e, v, marker, color=color, mfc="none", ms=11 if marker == "*" else 8, mew=1.2, label=f"{label} (0.6M)")
    if a.capacity.larger is not None:
        ax.axhline(a.capacity.larger["zero_network"], color="gray", ls=":", lw=0.8, label="a network with zero gradient")
    ax.set_title(larger_label(larger_network(s, 3)[1].epochs))


def plot_long(s: Robustness):
    """Learning curves of the preset's and the long schedule, with the best baselines; at a
    preset without the long run, one panel saying so."""
    found = long_results(s)
    if found is None:
        fig, ax = plots.figure(1, 1, height=1.0)
        ax.axis("off")
        ax.text(0.5, 0.5, f"The long schedule is not run at preset {s.preset.name!r}.", ha="center", va="center")
        return fig
    long, long_t = found
    fig, axes = plots.figure(1, 2, height=3.0)
    for label, res in ((f"{s.preset.epochs} epochs", s.robust()), (f"{s.preset.robust_long_epochs} epochs", long)):
        axes[0].semilogy(res.curves["epoch"], res.curves["e_test"], label=f"robust, {label}")
        axes[1].semilogy(res.curves["epoch"], res.curves["v_max_test"], label=f"robust, {label}")
    for ax, key in zip(axes, ("e_test", "v_max_test")):
        for i, (res, marker) in enumerate(((s.robust(Robust(tradeoff=True)), "k*"), (long_t, "r*"))):
            ax.semilogy(res.curves["epoch"][-1:], res.curves[key][-1:], marker, ms=9,
                        label=None if key == "e_test" else
                        f"+ trade-off epoch ({(s.preset.epochs, s.preset.robust_long_epochs)[i]} epochs)")
        ax.set_xlabel("epoch")
    for method, color in (("gaussian", "C2"), ("jacobian", "C3")):
        m = s.best_result(method).metrics
        axes[0].axhline(m["e_test"], color=color, ls="--", lw=0.8)
        axes[1].axhline(m["v_max_test"], color=color, ls="--", lw=0.8, label=f"best {SWEEP_TITLES[method]}")
    axes[0].set_ylabel("test e (%)")
    axes[1].set_ylabel(f"test {VMAX} (%)")
    plots.legend_outside(axes[1], "right")
    plots.log_ticks(*axes)
    return fig


def plot_attack_spectra(a: Analyses):
    """Radial power spectra of the optimal attacks, with each one's share above 10 cycles."""
    sp = a.spectra
    fig, ax = plots.figure(1, 1, height=3.0)
    for label, (k, power) in sp.spectra.items():
        ax.semilogy(k, power, label=f"{label}: {100 * sp.high_share[label]:.0f} % above 10")
    ax.axvline(10.5, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("cycles per image")
    ax.set_ylabel(r"power of $\mathcal{D}_{\max}$")
    plots.legend_outside(ax, "right")
    plots.log_ticks(ax)
    return fig


def plot_capacity(s: Robustness, a: Analyses):
    """The capacity floor against width, with the robust networks' measured v_max and own bounds."""
    c, widths = a.capacity, s.preset.widths
    fig, ax = plots.figure(1, 1, height=3.2)
    ax.loglog(list(c.floors), list(c.floors.values()), "o-", label=r"floor: $L$ principal directions of $\nabla\mathcal{O}$")
    ax.axhline(c.zero_network, color="gray", ls=":", label="a network with zero gradient")
    ax.loglog(widths, [s.robust(width=w).v_max_test for w in widths], "ks", label="robust training, measured")
    ax.loglog(widths, [c.own[w] for w in widths], "k^", mfc="none", label="bound from its own first layer")
    ax.loglog([k for k in paper.TABLE3 if k != "deep"], [paper.TABLE3[k][1] for k in paper.TABLE3 if k != "deep"],
              "r*", ms=9, label="the paper's robust networks (Table 3)")
    ax.set_xlabel("first-layer width $L$")
    ax.set_ylabel(f"test {VMAX} (%)")
    plots.legend_outside(ax, "right")
    plots.log_ticks(ax)
    return fig
