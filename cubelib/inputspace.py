"""Input-space analysis of papers 003 and 004, for any network of the book.

003  `projection_errors`: Algorithm 1's random-projection estimate of ||J||_F^2 against the
     exact norm, for growing n_proj (the paper: relative error ~ n_proj^(-1/2), and a further
     |B|^(-1/2) over a batch).
004  `indicator`: the robustness indicator, the mean |Jacobian| entry and the top |eigenvalue|
     of the input Hessian, of the outputs N_k / n and of the error d = ||N - C|| / n (004's
     decision margin adapted to regression, as in baselines.py), by power iteration on
     Hessian-vector products in float64;
     `surface`: the error along two input directions around a test image, against the
     oracle's answer there (eq. 52), 004's "decision surface in input space".
"""
from __future__ import annotations

import math

import torch
from scipy.stats import spearmanr

from . import geometry, jets, oracle, render
from .baselines import error_gradient, jacobian_frobenius, unit_projections


# --------------------------------------------------------------------------------------
# 003's convergence claim: the estimate's relative error falls as n_proj^(-1/2)

def projection_errors(model, x, n: float, n_projs=(1, 2, 4, 8, 16, 32), draws: int = 64, seed: int = 0) -> dict:
    """Relative rms error of Algorithm 1's ||J||_F^2 estimate, per image and over the batch
    mean, for each n_proj, over `draws` independent draws: {"n_proj", "per_image", "batch",
    "exact_mean", "estimate_mean" (n_proj = 1 averaged over all draws: unbiasedness),
    "predicted_per_image" (one projection, from 003's exact variance, eq. 15:
    var = 2C/(C+2) tr((J J^T)^2) - 2/(C+2) ||J||_F^4), "bound" (eq. 16: the relative
    variance is at most 2 (C-1)/(C+2))}."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        y, pull = model.pullback(x)
        exact = jacobian_frobenius(y, pull, n)
        C = y.shape[-1]
        rows = pull(torch.eye(C, dtype=x.dtype).expand(x.shape[0], C, C) / n)
        JJ = rows @ rows.transpose(1, 2)
        var = 2 * C / (C + 2) * (JJ @ JJ).diagonal(dim1=1, dim2=2).sum(-1) - 2 / (C + 2) * exact**2
    out = {"n_proj": list(n_projs), "per_image": [], "batch": [], "exact_mean": exact.mean().item(),
           "predicted_per_image": (var / exact**2).mean().sqrt().item(), "bound": (2 * (C - 1) / (C + 2)) ** 0.5}
    for k in n_projs:
        with torch.no_grad():
            est = torch.stack([jacobian_frobenius(y, pull, n, unit_projections(x.shape[0], k, g).to(x))
                               for _ in range(draws)])  # [draws, B]
        out["per_image"].append((((est - exact) / exact) ** 2).mean().sqrt().item())
        out["batch"].append((((est.mean(1) - exact.mean()) / exact.mean()) ** 2).mean().sqrt().item())
        if k == n_projs[0]:
            out["estimate_mean"] = est.mean().item()
    return out


# --------------------------------------------------------------------------------------
# 004's robustness indicator and input-space surfaces

def _hessian_probe(x, f):
    """The Hessian-vector product v -> H v of each row's f (rows independent), by double
    backpropagation through one graph."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    return lambda v: torch.autograd.grad((grad * v).sum(), x, retain_graph=True)[0].detach()


def _power_iteration(x, f, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """Top |eigenvalue| of the Hessian of each row's f by power iteration: [rows].
    The estimate is ||H v|| for the unit iterate v, which tends to max |lambda| whatever the
    signs (the Rayleigh quotient v.Hv would underestimate when +l and -l' are close)."""
    hvp = _hessian_probe(x, f)
    v = torch.randn(x.shape, generator=generator).to(x)
    v = v / v.norm(dim=-1, keepdim=True)
    lam = torch.zeros(x.shape[0], dtype=x.dtype)
    for _ in range(iterations):
        hv = hvp(v)
        lam = hv.norm(dim=-1)
        v = hv / lam.clamp(min=1e-300)[:, None]
    return lam


def _hessian_rms(x, f, probes: int, generator: torch.Generator) -> torch.Tensor:
    """rms eigenvalue sqrt(tr(H^2) / P) of each row's Hessian, by Hutchinson's estimate
    tr(H^2) = E ||H v||^2 over Rademacher vectors v: [rows]."""
    hvp = _hessian_probe(x, f)
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for _ in range(probes):
        v = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(x)
        total += (hvp(v) ** 2).sum(-1)
    return (total / probes / x.shape[-1]).sqrt()


def indicator(model, images: torch.Tensor, target: torch.Tensor, n: float, iterations: int = 40,
              probes: int = 8, seed: int = 0) -> dict:
    """004's robustness indicator on images [B, 41, 41] with cubes' targets [B, 9], in float64.

    Its eq. (9) bounds the change of a function by sum |J_i| |delta_i| + 1/2 sum |l_i| y_i^2
    (J the input gradient, l_i the Hessian's eigenvalues); the indicator is their average
    magnitudes.  For the outputs N_k / n:
    J_out   mean |d(N_k / n)/dx_p| over images, outputs and pixels
    H_out   mean over images and outputs of the top |eigenvalue| of the Hessian
    H_rms   the same for the rms eigenvalue sqrt(tr(H^2) / P) (all eigenvalues, Hutchinson)
    and for 004's margin adapted, the error d = ||N - C|| / n:
    J_err   mean |dd/dx_p|
    H_err   mean top |eigenvalue| of the curvature part of d's Hessian, sum_k rhat_k H(N_k / n)
            with rhat = (N - C)/||N - C|| held fixed: the full Hessian adds
            J^T (I - rhat rhat^T) J / ||N - C||, which grows without bound as the fit improves
            and would rank networks by accuracy, not curvature."""
    net = _float64_copy(model)
    x = images.reshape(images.shape[0], -1).to(torch.float64)
    target = target.to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    C = target.shape[-1]
    y, pull = net.pullback(x)
    J = pull(torch.eye(C, dtype=x.dtype).expand(x.shape[0], C, C) / n).detach()
    gd = error_gradient(y, pull, target, n)
    rhat = ((y - target) / (y - target).norm(dim=-1, keepdim=True)).detach()
    x_rep = x.repeat_interleave(C, 0)  # one copy of each image per output
    k = torch.arange(C).repeat(x.shape[0])
    one_output = lambda z: net(z)[torch.arange(z.shape[0]), k] / n
    h_out = _power_iteration(x_rep, one_output, iterations, g)
    h_rms = _hessian_rms(x_rep, one_output, probes, g)
    h_err = _power_iteration(x, lambda z: (net(z) * rhat).sum(-1) / n, iterations, g)
    return {"J_out": J.abs().mean().item(), "H_out": h_out.mean().item(), "H_rms": h_rms.mean().item(),
            "J_err": gd.detach().abs().mean().item(), "H_err": h_err.mean().item(), "images": x.shape[0]}


def _float64_copy(model):
    net = jets.MLP(tuple(w.shape[0] for w in model.weights[:-1]), inputs=model.weights[0].shape[1],
                   outputs=model.weights[-1].shape[0], dtype=torch.float64)
    net.load_state_dict({k: v.detach().to("cpu", torch.float64) for k, v in model.state_dict().items()})
    return net


def surface(model, vertices: torch.Tensor, u: torch.Tensor, w: torch.Tensor, radius: float, steps: int,
            D: torch.Tensor) -> dict:
    """004's input-space surface around one clean image: the error e (eq. 8 for one image, %)
    of the network against the oracle's answer at I + a u + b w, for a, b on a steps x steps
    grid in [-radius, radius] (u, w unit images [41, 41]).

    The oracle's answer is its second-order expansion (eq. 52) along the whole perturbation,
    from the image's exact derivatives (rendered here in float64)."""
    V = vertices.reshape(1, 8, 3).to(torch.float64)
    r = render.render(V, order=2)
    t = oracle.tangent(V, r.d1, r.d2)
    a = torch.linspace(-radius, radius, steps, dtype=torch.float64)
    A, B = torch.meshgrid(a, a, indexing="xy")  # A varies along columns (u), B along rows (w)
    delta = A.reshape(-1, 1) * u.reshape(1, -1).double() + B.reshape(-1, 1) * w.reshape(1, -1).double()
    ex = oracle.along(t, delta[None], order=2)
    answer = geometry.target(V) + ex.dO[0] + 0.5 * ex.d2O[0]  # [steps^2, 9]
    x = (r.image.reshape(1, -1) + delta).float()
    p = next(model.parameters())
    with torch.no_grad():
        N = model(x.to(p)).double().cpu()
    e = (100 * (N - answer).abs() / D.double()).mean(-1)
    return {"a": a, "e": e.reshape(steps, steps)}


def spearman(a, b) -> float:
    """Spearman's rank correlation of two sequences (average ranks for ties)."""
    rho = spearmanr(a, b).statistic
    return float(rho) if not math.isnan(rho) else 0.0
