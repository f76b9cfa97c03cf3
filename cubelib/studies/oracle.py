"""The oracle chapter (§3.6-3.7, §4.4-4.5): an adversarial gradient, the oracle's Taylor
expansion checked against the nonlinear oracle, the oracle's gradients, the optimal attacks,
and the vulnerabilities of the accuracy chapter's networks.

`study` loads the networks and the test images; the analyses (network gradients, nonlinear
oracle solves) are separate functions that the chapter calls where it shows them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import data, directions, experiments, geometry, oracle, plots, presets, render, robustness, store
from ..report import Table
from .accuracy import METHODS

TAYLOR_EPS = (0.2, 0.1, 0.05, 0.025, 0.0125)  # steps along D of the Taylor check
RATE_EPS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)  # steps along the optimal attack of the rate check


@dataclass
class Oracle:
    preset: presets.Preset
    networks: dict  # (method, width) -> the accuracy chapter's network, in float64
    best: int  # the largest width
    vertices: torch.Tensor  # [n, 8, 3] the first `oracle_images` test cubes
    images: torch.Tensor  # [n, 41, 41] their images, float64
    grad_O: torch.Tensor  # [n, 9, 1681] the oracle's gradients at them (eqs. 25-26)
    numbers: dict


def study(preset, device="cpu") -> Oracle:
    """The accuracy chapter's networks (trained unless stored) and the first test images."""
    p = presets.get(preset)
    nets = {(m, w): store.network(experiments.accuracy(p, m, w), device).double() for w in p.widths for m in METHODS}
    ds = data.load(data.dataset_config(p, order=1), progress=False)
    n = p.oracle_images
    best = max(p.widths)
    numbers = {"D1": float(ds.norms.D_i[0]), "width_best": int(best), "n_images": int(n)}
    return Oracle(preset=p, networks=nets, best=best, vertices=ds.test.vertices[:n],
                  images=ds.test.image[:n].double(), grad_O=data.oracle_gradients(ds.test, n), numbers=numbers)


@dataclass
class Adversarial:
    grad_N: torch.Tensor  # [n, 9, 1681] the widest conventional network's gradients at the images
    image: torch.Tensor  # [41, 41] the first test image
    g1: torch.Tensor  # [41, 41] grad N_1 there
    eps: float  # the step along it
    numbers: dict


def adversarial(s: Oracle, eps: float = 1.0) -> Adversarial:
    """§3.6: the widest conventional network's gradients, and one step of eps grad N_1 on
    the first image against its linear prediction eps ||grad N_1||^2."""
    net = s.networks["conventional", s.best]
    grad_N = robustness.network_gradients(net, s.images)
    g1 = grad_N[0, 0].reshape(41, 41)
    image = s.images[0]
    before = net(image.reshape(1, -1))[0, 0].item()
    after = net((image + eps * g1).reshape(1, -1))[0, 0].item()
    numbers = {"adv_norm": float(g1.norm()), "adv_change": after - before, "adv_pred": float(eps * g1.norm() ** 2),
               "adv_pixel": float(eps * g1.abs().max()), "adv_norm_mean": float(grad_N[:, 0].norm(dim=1).mean()),
               "adv_over_D1": (after - before) / s.numbers["D1"]}
    return Adversarial(grad_N=grad_N, image=image, g1=g1, eps=eps, numbers=numbers)


@dataclass
class Taylor:
    eps: list
    errors: dict  # direction -> (first-order errors, second-order errors), one per eps
    slopes: dict  # direction -> (first-order, second-order) slope of log error against log eps
    statuses: list  # the nonlinear oracle's status of every solve
    numbers: dict


def taylor_check(s: Oracle) -> Taylor:
    """§3.7, §4.4: the oracle of I(C) + eps D by Levenberg-Marquardt against its first- and
    second-order expansion (eqs. 23, 51) at `taylor_cubes` poses, for a smooth (D_low) and a
    white-noise (D_high) direction."""
    cubes = s.vertices[:s.preset.taylor_cubes]
    full = render.render(cubes, order=2)
    g = torch.Generator().manual_seed(0)
    dirs = {"smooth (D_low)": directions.low(1, g)[0], "white noise (D_high)": directions.high(1, g)[0]}
    eps_list = list(TAYLOR_EPS)
    C = geometry.target(cubes)
    errors, statuses = {}, []
    for name, D in dirs.items():
        ex = oracle.expand(cubes, full, D[None], order=2)
        e1, e2 = [], []
        for eps in eps_list:
            found = oracle.nonlinear(full.image + eps * D, cubes)
            statuses += found.status
            T = geometry.target(found.vertices)
            first = C + eps * ex.dO[:, 0]
            e1.append((T - first).norm().item())
            e2.append((T - first - eps**2 / 2 * ex.d2O[:, 0]).norm().item())
        errors[name] = (e1, e2)
    slopes = {name: tuple(float(np.polyfit(np.log(eps_list), np.log(e), 1)[0]) for e in pair)
              for name, pair in errors.items()}
    numbers = {"converged_share": 100 * sum(st == "converged" for st in statuses) / len(statuses),
               "taylor_cubes": len(cubes), "taylor_solves": len(statuses),
               "slope1_min": min(sl[0] for sl in slopes.values()),
               "slope2_min": min(sl[1] for sl in slopes.values())}
    return Taylor(eps=eps_list, errors=errors, slopes=slopes, statuses=statuses, numbers=numbers)


@dataclass
class Spectra:
    sv_oracle: torch.Tensor  # [9] mean singular values of the oracle's nine gradients
    sv_network: torch.Tensor  # [9] the same for the widest conventional network
    numbers: dict


def spectra(s: Oracle, adv: Adversarial) -> Spectra:
    """§4.4.2: the nine oracle gradients span six dimensions; the network's do not."""
    sv_O = torch.linalg.svdvals(s.grad_O).mean(0)
    sv_N = torch.linalg.svdvals(adv.grad_N).mean(0)
    return Spectra(sv_oracle=sv_O, sv_network=sv_N, numbers={
        "rank_gap": float(sv_O[5] / sv_O[6]),
        # the network's: nearly, not exactly, six-dimensional (the paper: "very similar")
        "net_gap": float(sv_N[5] / sv_N[6]), "net_tail": float(sv_N[6] / sv_N[0])})


@dataclass
class Attacks:
    d_inv: torch.Tensor  # [41, 41] eq. (27) at the first image, output 1
    d_sen: torch.Tensor  # [41, 41] eq. (28)
    numbers: dict


def one_output_attacks(s: Oracle, adv: Adversarial) -> Attacks:
    """§4.5: the invariance and sensitivity directions of output 1 at the first image."""
    gN, gO = adv.grad_N[0, 0], s.grad_O[0, 0]
    d_inv, d_sen = robustness.one_output_attacks(gN, gO)
    # how much N_1 moves along the oracle's fastest cube motion, relative to O_1
    return Attacks(d_inv=d_inv.reshape(41, 41), d_sen=d_sen.reshape(41, 41),
                   numbers={"sen_share": float(d_sen.norm() / gN.norm()), "inv_response": float(gN @ gO / (gO @ gO))})


@dataclass
class Vulnerabilities:
    means: dict  # (method, width) -> mean v_max, v_sen, v_inv and v_inv in the G^11 basis, in %
    table: Table
    numbers: dict


def vulnerabilities(s: Oracle) -> Vulnerabilities:
    """Eqs. (32)-(41): the mean vulnerabilities of every network over the images, v_inv also
    with eq. (41)'s constraint projected on the oracle's eigenvectors as extracted."""
    means = {}
    for (m, w), net in s.networks.items():
        gN = robustness.network_gradients(net, s.images)
        vul = robustness.vulnerabilities(gN, s.grad_O)
        alt = robustness.vulnerabilities(gN, s.grad_O, invariance_basis="oracle")
        means[m, w] = {**vul.means(), "v_inv_alt": alt.v_inv.mean().item()}
    table = Table("", ["network", "$\\bar v_{\\max}$ %", "$\\bar v_{\\text{sen}}$ %", "$\\bar v_{\\text{inv}}$ %",
                       "$\\bar v_{\\text{inv}}$ % ($G^{11}$ basis)"], formats={k: ".1f" for k in range(1, 5)})
    for (m, w), r in means.items():
        table.add(f"{m}, L = {w}", r["v_max"], r["v_sen"], r["v_inv"], r["v_inv_alt"])
    conv, first = means["conventional", s.best], means["first", s.best]
    # a network with zero gradient: its v_max is the oracle's own largest rate
    zero = robustness.vulnerabilities(torch.zeros_like(s.grad_O), s.grad_O).v_max.mean().item()
    numbers = {"vmax_conv": conv["v_max"], "vmax_first": first["v_max"], "vsen_conv": conv["v_sen"],
               "vinv_conv": conv["v_inv"], "vinv_alt_conv": conv["v_inv_alt"], "oracle_rate": zero,
               "vmax_first_all": ", ".join(f"{r['v_max']:.0f} % at L = {w}" for (m, w), r in means.items()
                                           if m == "first"),
               "vmax_conv_all": ", ".join(f"{r['v_max']:.0f} % at L = {w}" for (m, w), r in means.items()
                                          if m == "conventional")}
    return Vulnerabilities(means=means, table=table, numbers=numbers)


@dataclass
class RateCheck:
    eps: list
    ratio: list  # mean over images of measured rate / predicted v_max, one per eps
    numbers: dict


def rate_check(s: Oracle) -> RateCheck:
    """The predicted v_max against the real rate: the change of network minus nonlinear
    oracle along the optimal attack, per unit step, at `attack_checks` images."""
    net = s.networks["conventional", s.best]
    k = s.preset.attack_checks
    images, V = s.images[:k], s.vertices[:k]
    vul = robustness.vulnerabilities(robustness.network_gradients(net, images), s.grad_O[:k])
    D = vul.d_max.reshape(k, 41, 41)
    base = net(images.flatten(1)) - geometry.target(V)
    ratio = []
    for eps in RATE_EPS:
        moved = oracle.nonlinear(images + eps * D, V)
        err = net((images + eps * D).flatten(1)) - geometry.target(moved.vertices)
        measured = (err - base).norm(dim=1) / eps * robustness.V_SCALE
        ratio.append((measured / vul.v_max).mean().item())
    return RateCheck(eps=list(RATE_EPS), ratio=ratio, numbers={
        "rate_ratio": ratio[-1], "rate_images": int(k), "rate_eps_big": RATE_EPS[0], "rate_ratio_big": ratio[0]})


def _image_panels(n: int):
    """A row of `n` square image panels across the page."""
    return plots.figure(1, n, height=plots.WIDTH / max(n, 3) + 0.3, width=plots.WIDTH * min(n, 3) / 3)


def plot_adversarial(s: Oracle, adv: Adversarial):
    """The first test image, grad N_1 there, and the image plus eps grad N_1."""
    fig, axes = _image_panels(3)
    plots.show_image(axes[0], adv.image, "test image")
    plots.show_signed(axes[1], adv.g1, r"$\nabla N_1$")
    plots.show_image(axes[2], adv.image + adv.eps * adv.g1, r"image + $\nabla N_1$")
    for ax in axes:
        plots.zoom(ax, s.vertices[0], 0.6)
    return fig


def plot_taylor(taylor: Taylor):
    """Error of the oracle's first- and second-order expansion against the nonlinear oracle,
    for each direction, against eps; the fitted slopes in the legend."""
    fig, ax = plots.figure(1, 1, height=3.4)
    for (name, (e1, e2)), color in zip(taylor.errors.items(), ("C0", "C1")):
        s1, s2 = taylor.slopes[name]
        label = name.replace("D_low", r"$\mathcal{D}_{\mathrm{low}}$")
        label = label.replace("D_high", r"$\mathcal{D}_{\mathrm{high}}$")
        ax.loglog(taylor.eps, e1, "o-", color=color, label=f"{label}:\nfirst order, slope {s1:.2f}")
        ax.loglog(taylor.eps, e2, "s--", color=color, label=f"{label}:\nsecond order, slope {s2:.2f}")
    ax.set_xlabel(r"step $\varepsilon$ along $\mathcal{D}$")
    ax.set_ylabel(r"$\|\mathcal{O}(\mathcal{I} + \varepsilon\mathcal{D}) - \mathrm{expansion}\|$")
    plots.log_ticks(ax)
    plots.legend_outside(ax, "right", labelspacing=0.9)
    return fig


def plot_gradients(s: Oracle, adv: Adversarial, sp: Spectra):
    """grad O_1 and the network's grad N_1 at the first image, and the mean singular values of
    the nine gradients of the oracle and of the network."""
    fig, axes = plots.figure(1, 3, height=plots.WIDTH / 3 + 0.3)
    plots.show_signed(axes[0], s.grad_O[0, 0].reshape(41, 41), r"$\nabla\mathcal{O}_1$, oracle")
    plots.show_signed(axes[1], adv.g1, r"$\nabla N_1$, conventional network")
    for ax in axes[:2]:
        plots.zoom(ax, s.vertices[0], 0.6)
    axes[2].semilogy(range(1, 10), sp.sv_oracle, "o-", label="oracle")
    axes[2].semilogy(range(1, 10), sp.sv_network, "s-", label=f"network, $L$ = {s.best}")
    axes[2].set_xticks(range(1, 10))
    axes[2].set_xlabel("singular value index")
    axes[2].set_ylabel("mean singular value")
    plots.log_ticks(axes[2])
    axes[2].legend(loc="lower left")
    return fig


def plot_attacks(s: Oracle, att: Attacks):
    """The invariance and sensitivity directions of output 1 at the first image."""
    fig, axes = _image_panels(2)
    plots.show_signed(axes[0], att.d_inv, r"$\mathcal{D}_{\mathrm{inv}}$ (eq. 27)")
    plots.show_signed(axes[1], att.d_sen, r"$\mathcal{D}_{\mathrm{sen}}$ (eq. 28)")
    for ax in axes:
        plots.zoom(ax, s.vertices[0], 0.6)
    return fig


def plot_rate(rate: RateCheck):
    """Measured rate of the true error along the optimal attack over the predicted v_max."""
    fig, ax = plots.figure(1, 1, height=3.0)
    ax.semilogx(rate.eps, rate.ratio, "o-")
    ax.axhline(1, color="k", lw=0.7)
    ax.set_xlabel(r"step $\varepsilon$ along the optimal attack")
    ax.set_ylabel(r"measured rate / predicted $v_{\max}$")
    plots.log_ticks(ax)
    return fig
