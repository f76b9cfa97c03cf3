"""The robustness chapter's analyses on the data set and the networks' weights (random
directions and their norms, the jet check, network gradients, spectra of the optimal attacks,
the capacity floor) and its figures.  Each analysis returns its figure data and numbers."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from .. import capacity, data, directions, experiments, paper, plots, robustness
from .. import store
from .. import terms as T
from ..experiments import Robust
from ..presets import Preset
from .robustness import FAMILIES, FLOOR_WIDTHS, NORM_IMAGES, Robustness, SWEEP_LABELS, SWEEP_TITLES, long_results


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


def _mean_pair_cosine(x: torch.Tensor) -> float:
    """Mean scalar product of two different unit vectors among the rows of x."""
    c = _unit(x.flatten(1)) @ _unit(x.flatten(1)).T
    return float((c.sum() - c.diagonal().sum()) / (c.numel() - len(c)))


def _network_gradients(exp, images: torch.Tensor, device) -> torch.Tensor:
    """grad N [n, 9, 1681] of a stored network, in float64."""
    return robustness.network_gradients(store.network(exp, device).double(), images)


@dataclass
class Directions:
    examples: dict  # family -> one draw [41, 41]
    spectra: dict  # family -> (k, power) of spectrum_images draws
    numbers: dict  # cos_low


def random_directions(s: Robustness, generator: torch.Generator) -> Directions:
    """One draw of each family (Fig. 4), the radial power spectra of spectrum_images draws, and
    the mean scalar product of two draws of D_low (from `generator`, in that order)."""
    examples = {name: f(1, generator)[0] for name, f in FAMILIES.items()}
    spectra = {name: directions.radial_spectrum(f(s.preset.spectrum_images, generator)) for name, f in FAMILIES.items()}
    cos_low = _mean_pair_cosine(directions.low(_n_images(s.preset), generator))
    return Directions(examples, spectra, {"cos_low": abs(cos_low)})


@dataclass
class RobustCost:
    norms: dict  # family -> (n_i [9], c) of eq. (43) over the first NORM_IMAGES training images
    numbers: dict  # jet_error

    @property
    def text(self) -> str:
        return "\n".join(f"D_{f}: n_i from {n_i.min():.4f} to {n_i.max():.4f} (z components largest), c = {c:.3f}"
                         for f, (n_i, c) in self.norms.items())


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
    nets = {"robust, trade-off adj.": experiments.robust(p, Robust(tradeoff=True), W),
            f"Gaussian, sigma = {s.best['gaussian']:g}": experiments.gaussian(p, s.best["gaussian"], W),
            f"Jacobian, c^2 = {s.best['jacobian']:g}": experiments.jacobian(p, s.best["jacobian"], W),
            "conventional": experiments.accuracy(p, "conventional", W)}
    panels = {r"$\nabla\mathcal{O}_1$ (oracle)": grad_O[:, 0],
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
            f"Gaussian, sigma = {s.best['gaussian']:g}": experiments.gaussian(p, s.best["gaussian"], W),
            "conventional": experiments.accuracy(p, "conventional", W)}
    if p.high_width == W:
        nets["robust + R_high"] = experiments.robust(p, Robust(high=True), W)
    spectra = {label: directions.radial_spectrum(robustness.vulnerabilities(
        _network_gradients(exp, images, device), grad_O).d_max.reshape(-1, 41, 41)) for label, exp in nets.items()}
    high_share = {label: float(power[11:].sum()) for label, (k, power) in spectra.items()}
    return AttackSpectra(spectra, high_share, {"high_share_robust": 100 * high_share["robust"],
                                               "high_share_conv": 100 * high_share["conventional"]})


@dataclass
class Capacity:
    floors: dict  # L -> mean floor of v_max (%) for L principal directions of the oracle gradients
    zero_network: float  # v_max (%) of a network with zero gradient
    own: dict  # width -> mean bound (%) from the first layer of the robust network of that width
    numbers: dict


def capacity_floors(s: Robustness, device="cpu") -> Capacity:
    """The first layer's bound on v_max (cubelib.capacity) on the first attack_images test
    images: with L principal directions of the training images' oracle gradients, and with the
    robust networks' own first layers."""
    p = s.preset
    ds = _dataset(p)
    grad_O_test = data.oracle_gradients(ds.test, _n_images(p))
    grad_O_train = data.oracle_gradients(ds.train, min(len(ds.train), NORM_IMAGES))
    all_widths = sorted(set(FLOOR_WIDTHS) | set(p.widths))
    pcs = capacity.principal_directions(grad_O_train, max(all_widths))  # leading first
    floors = {L: float(capacity.floor(grad_O_test, pcs[:, :L]).mean()) for L in all_widths}
    zero_network = float(capacity.floor(grad_O_test, None).mean())
    own = {w: float(capacity.floor(grad_O_test, capacity.first_layer_basis(
        store.network(experiments.robust(p, Robust(), w), device))).mean()) for w in p.widths}
    W = p.sweep_width
    return Capacity(floors, zero_network, own, {
        "floor_W": floors[W], "floor_256": floors.get(256, float("nan")), "floor_1024": floors.get(1024, float("nan")),
        "zero_network": zero_network, "own_W": own[W]})


# --------------------------------------------------------------------------------------
# Figures

def _family(name: str) -> str:
    return rf"$\mathcal{{D}}_{{\mathrm{{{name}}}}}$"


def _finish(fig, ax, xlabel: str, ylabel: str, **legend):
    """Label a one-panel figure's axes, add the legend, plain log ticks, tight layout."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(**legend)
    plots.plain_log_ticks(*fig.axes)
    fig.tight_layout()
    return fig


def plot_directions(d: Directions, g: Gradients):
    """Fig. 4's three families and the radial spectra of the families and the first gradients."""
    fig = plt.figure(figsize=(9, 2.6))
    for i, (name, D) in enumerate(d.examples.items()):
        plots.show_signed(fig.add_subplot(1, 4, i + 1), D, _family(name))
    ax = fig.add_subplot(1, 4, 4)
    for name, (k, power) in d.spectra.items():
        ax.semilogy(k, power, label=_family(name))
    for label, (k, power) in g.spectra.items():
        ax.semilogy(k, power, "--", label=label)
    return _finish(fig, ax, "cycles per image", "power (unit norm)", fontsize=6)


def plot_sweeps(s: Robustness):
    """Figs. 6-7: error and vulnerabilities along the sigma and c^2 sweeps, against robust training."""
    rob_t = s.robust(Robust(tradeoff=True)).metrics
    fig, axes = plt.subplots(2, 2, figsize=(8.4, 5.6))
    for col, (method, sw) in enumerate(s.sweeps.items()):
        values = sw["values"]
        ax = axes[0, col]
        ax.plot(values, sw["e_train"], "o:", label="training")
        ax.plot(values, sw["e_test"], "o-", label="test")
        ax.axhline(rob_t["e_test"], color="k", ls="--", lw=0.8, label="robust (trade-off adj.), test")
        ax.set_ylabel("e (%) on clean images")
        ax = axes[1, col]
        for k, label in (("v_max_test", r"$\bar v_{\max}$"), ("v_sen_test", r"$\bar v_{\mathrm{sen}}$"),
                         ("v_inv_test", r"$\bar v_{\mathrm{inv}}$")):
            ax.plot(values, sw[k], "o-", label=label)
        ax.axhline(rob_t["v_max_test"], color="k", ls="--", lw=0.8, label=r"robust $\bar v_{\max}$")
        ax.set_ylabel("vulnerability (%), test")
        for ax in axes[:, col]:
            ax.set_xlabel(SWEEP_LABELS[method])
            ax.set_xscale("log" if method == "jacobian" else "linear")
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        axes[0, col].set_title(SWEEP_TITLES[method])
    plots.plain_log_ticks(*fig.axes)
    fig.tight_layout()
    return fig


def plot_gradients(g: Gradients, k: int = 0):
    """Fig. 5: the first output's gradient at test image `k`, with its cosine to the oracle's."""
    fig, axes = plt.subplots(1, len(g.panels), figsize=(2.1 * len(g.panels), 2.5))
    for ax, (title, grad) in zip(axes, g.panels.items()):
        cos = g.cosines[title]
        plots.show_signed(ax, grad[k].reshape(41, 41), title)
        plots.zoom(ax, g.vertices[k], 0.6)
        ax.set_xlabel(f"cos {cos[k]:.2f} (mean {cos.mean():.2f})", fontsize=8)
    plots.plain_log_ticks(*fig.axes)
    fig.tight_layout()
    return fig


def plot_curves(s: Robustness):
    """Test error and v_max along training: robust, the best baselines, conventional."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3))
    for label, cur in s.curves.items():
        if not cur.get("v_max_test"):
            continue  # a result stored before the curves carried v_max
        axes[0].semilogy(cur["epoch"], cur["e_test"], label=label)
        axes[1].semilogy(cur["epoch"], cur["v_max_test"], label=label)
    tradeoff = s.robust(Robust(tradeoff=True)).curves
    axes[0].semilogy(tradeoff["epoch"][-1:], tradeoff["e_test"][-1:], "k*", label="robust + 1 epoch E0 + E1")
    axes[1].semilogy(tradeoff["epoch"][-1:], tradeoff["v_max_test"][-1:], "k*")
    axes[0].set_ylabel("test e (%)")
    axes[1].set_ylabel(r"test $\bar v_{\max}$ (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    plots.plain_log_ticks(*fig.axes)
    fig.tight_layout()
    return fig


def plot_plane(s: Robustness, zero_gradient_v: float):
    """Every network of the sweep width on the error-vulnerability plane."""
    p, W = s.preset, s.preset.sweep_width
    fig, ax = plt.subplots(figsize=(6.2, 4))
    for method, marker in (("gaussian", "o-"), ("jacobian", "s-")):
        sw = s.sweeps[method]
        ax.plot(sw["e_test"], sw["v_max_test"], marker, ms=4, label=f"{method} sweep")
        for v, e, vm in zip(sw["values"], sw["e_test"], sw["v_max_test"]):
            ax.annotate(f"{v:g}", (e, vm), fontsize=6, xytext=(3, 2), textcoords="offset points")
    points = {"robust": (Robust(), "k*"), "robust, trade-off adj.": (Robust(tradeoff=True), "r*")}
    if p.high_width == W:
        points.update({"robust + R_high": (Robust(high=True), "kP"),
                       "robust + R_high, trade-off adj.": (Robust(high=True, tradeoff=True), "rP")})
    for label, (kind, marker) in points.items():
        m = s.robust(kind).metrics
        ax.plot(m["e_test"], m["v_max_test"], marker, ms=9, label=label)
    if p.robust_long_epochs:
        for (method, marker), res in zip((("robust", "kX"), ("robust-tradeoff", "rX")), long_results(s)):
            ax.plot(res.e_test, res.v_max_test, marker, ms=8, label=f"{method}, {p.robust_long_epochs} epochs")
    for method, marker in (("conventional", "v"), ("first", "^")):
        m = s.accuracy[method].metrics
        ax.plot(m["e_test"], m["v_max_test"], marker, color="gray", label=f"{method} (accuracy chapter)")
    ax.axhline(zero_gradient_v, color="gray", ls=":", lw=0.8, label="zero-gradient network")
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, "test e (%), clean images", r"test $\bar v_{\max}$ (%)", fontsize=6, ncol=2)


def plot_long(s: Robustness):
    """Learning curves of the preset's and the long schedule, with the best baselines (None: not run)."""
    found = long_results(s)
    if found is None:
        return None
    long, long_t = found
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3))
    for label, res in ((f"{s.preset.epochs} epochs", s.robust()), (f"{s.preset.robust_long_epochs} epochs", long)):
        axes[0].semilogy(res.curves["epoch"], res.curves["e_test"], label=label)
        axes[1].semilogy(res.curves["epoch"], res.curves["v_max_test"], label=label)
    for ax, key in zip(axes, ("e_test", "v_max_test")):
        for res, marker in ((s.robust(Robust(tradeoff=True)), "k*"), (long_t, "r*")):
            ax.semilogy(res.curves["epoch"][-1:], res.curves[key][-1:], marker)
        ax.set_xlabel("epoch")
    for method, color in (("gaussian", "C2"), ("jacobian", "C3")):
        m = s.best_result(method).metrics
        axes[0].axhline(m["e_test"], color=color, ls="--", lw=0.8, label=f"best {method}")
        axes[1].axhline(m["v_max_test"], color=color, ls="--", lw=0.8)
    axes[0].set_ylabel("test e (%)")
    axes[1].set_ylabel(r"test $\bar v_{\max}$ (%)")
    axes[0].legend(fontsize=7)
    plots.plain_log_ticks(*fig.axes)
    fig.tight_layout()
    return fig


def plot_attack_spectra(a: AttackSpectra):
    """Radial power spectra of the optimal attacks, with each one's share above 10 cycles."""
    fig, ax = plt.subplots(figsize=(5.4, 3.2))
    for label, (k, power) in a.spectra.items():
        ax.semilogy(k, power, label=f"{label}: {100 * a.high_share[label]:.0f} % above 10")
    return _finish(fig, ax, "cycles per image", r"power of $\mathcal{D}_{\max}$", fontsize=7)


def plot_capacity(s: Robustness, c: Capacity):
    """The capacity floor against width, with the robust networks' measured v_max and own bounds."""
    widths = s.preset.widths
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    ax.loglog(list(c.floors), list(c.floors.values()), "o-", label="floor: L principal directions of grad O")
    ax.axhline(c.zero_network, color="gray", ls=":", label="a network with zero gradient")
    ax.loglog(widths, [s.robust(width=w).v_max_test for w in widths], "ks", label="robust training, measured")
    ax.loglog(widths, [c.own[w] for w in widths], "k^", mfc="none", label="bound from its own first layer")
    ax.loglog([k for k in paper.TABLE3 if k != "deep"], [paper.TABLE3[k][1] for k in paper.TABLE3 if k != "deep"],
              "r*", label="paper, Table 3")
    return _finish(fig, ax, "first-layer width L", r"test $\bar v_{\max}$ (%)", fontsize=7)
