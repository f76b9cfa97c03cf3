"""The literature's robust-training methods, adapted to the cube's 9-output regression.

Papers 002-004 regularise classifiers.  Here the loss of one image is our E0,

    l(x) = ||N(x) - C||^2 / n^2                 (n = avg ||C||, eq. 7)

and the decision margin of 004 becomes the output error  d(x) = ||N(x) - C|| / n.  Outputs
enter the Jacobian regularisers as N / n, so every term is in E0's units.  Each term below
is per image, averaged over the batch by `losses.terms`, and weighted there by
`TrainConfig.baseline_weight` (beta of 002, lambda_JR of 003, c of 004).

002  IBP_loss  Loss IBP, eq. (6)-(7):   1/r ||grad_x l||_r^r
     IBP_pred  Prediction IBP, eq. (9): 1/r ||(dN/dx) g / n||_r^r, g = grad_x l taken as a
               constant (002 propagates it as a fixed tangent vector, as Tangent BP does)
     TBP       Tangent BP, eq. (3):     sum_i 1/r ||dN/dnu_i / n_i||_r^r over the six tangent
               images: E1 with its targets set to zero.  They are not invariances here: the
               outputs must move along them by dC/dnu_i.
     fast AT   §4.2: E0 at x* = x + eps sign(grad_x l) only (TrainConfig.adversarial_eps)
003  JR        lambda/2 ||J||_F^2, J = d(N/n)/dx, estimated by Algorithm 1 with n_proj random
               unit output vectors, ||J||_F^2 ~ C/n_proj sum_mu ||v_mu^T J||^2 (eq. 8), or
               exactly (n_proj = 0) as sum over the 9 basis vectors (eq. 6)
004  GR        eq. (11): L_norm(grad_x d), the l1, l2 or l_inf norm of the error's gradient

r is 1 (002's default) or 2, set by TrainConfig.baseline_norm ("l1", "l2"; GR also "linf").

The analysis of 003 and 004 (the projection estimate's convergence, the input-space surfaces
and the robustness indicator) is in inputspace.py: it does not train, so this module, which
does, stays in experiments.training_source_hash alone.
"""
from __future__ import annotations

import torch

NORMS = ("l1", "l2", "linf")


def penalty(v: torch.Tensor, norm: str) -> torch.Tensor:
    """002's L~_r(v) = ||v||_r^r / r over the last dimension (r = 1 for "l1", 2 for "l2")."""
    if norm == "l1":
        return v.abs().sum(-1)
    if norm == "l2":
        return 0.5 * (v**2).sum(-1)
    raise ValueError(f"002's penalty takes norm 'l1' or 'l2', got {norm!r}")


def vector_norm(v: torch.Tensor, norm: str) -> torch.Tensor:
    """004's L_norm(v): the l1, l2 or l_inf norm over the last dimension."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return v.abs().sum(-1) if norm == "l1" else v.norm(dim=-1) if norm == "l2" else v.abs().amax(-1)


def loss_gradient(y, pull, target, n: float) -> torch.Tensor:
    """grad_x l [B, P] for l = ||N - C||^2 / n^2, from `model.pullback(x)`'s (y, pull);
    differentiable in the weights (double backpropagation)."""
    return pull((2.0 / n**2) * (y - target)[:, None])[:, 0]


def error_gradient(y, pull, target, n: float, floor: float = 1e-12) -> torch.Tensor:
    """grad_x d [B, P] for 004's decision function adapted to regression, d = ||N - C|| / n:
    J^T (N - C) / (n ||N - C||) (the floor only guards an exact fit)."""
    r = y - target
    return pull((r / (n * r.norm(dim=-1, keepdim=True).clamp(min=floor)))[:, None])[:, 0]


def jacobian_frobenius(y, pull, n: float, projections: torch.Tensor | None = None) -> torch.Tensor:
    """||J||_F^2 per image [B] with J = d(N / n)/dx, from `model.pullback(x)`'s (y, pull).

    projections [B, n_proj, 9] unit output vectors: 003's estimate C/n_proj sum ||v^T J||^2
    (Algorithm 1, eq. 8); None: exact, one pullback row per output (eq. 6)."""
    B, C = y.shape
    if projections is None:
        rows = pull(torch.eye(C, dtype=y.dtype, device=y.device).expand(B, C, C) / n)
        return (rows**2).sum((-1, -2))
    return C * (pull(projections / n) ** 2).sum(-1).mean(-1)


def unit_projections(n_images: int, n_proj: int, generator: torch.Generator, outputs: int = 9) -> torch.Tensor:
    """Algorithm 1's random vectors: uniform on the unit sphere S^(C-1), [n, n_proj, C]."""
    v = torch.randn(n_images, n_proj, outputs, generator=generator)
    return v / v.norm(dim=-1, keepdim=True)


def tangent_bp(y1: torch.Tensor, n_i: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """Tangent BP per image [B] from the extended pass's derivatives along the six tangent
    images, y1 [B, 6, 9] (002 eq. 3), each normalised like E1's (by n_i)."""
    return penalty(y1 / n_i[:, None], norm).sum(-1)


def adversarial_images(model, x, target, n: float, eps: float) -> torch.Tensor:
    """002's fast adversarial examples x + eps sign(grad_x l) (eq. 4), as constants."""
    with torch.enable_grad():
        y, pull = model.pullback(x)
        g = loss_gradient(y, pull, target, n)
    return (x + eps * torch.sign(g)).detach()
