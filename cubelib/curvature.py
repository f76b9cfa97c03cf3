"""Where a network's second derivative along the manifold comes from (§5.2, the E2 term).

Along the pose curve nu -> I(T(nu) C) the chain rule splits the network's second derivative
for a pair (i, j) exactly into

    d2N_ij = H_N[dI_i, dI_j] + J_N d2I_ij
           = H_N[dI_i, dI_j] + J_N P d2I_ij + J_N T d2I_ij,

with T the projection onto the tangent space span(dI_1 .. dI_6) (T x = sum_k c_k dI_k,
Gamma c = dI . x) and P = 1 - T.  Since J_N dI_k = dN/dnu_k, the tangential part
J_N T d2I_ij = sum_k c_k dN/dnu_k is fixed by the network's first derivatives: for a network
with exact first derivatives it equals tau_ij = sum_k c_k dC/dnu_k.  The oracle's gradients
lie in the tangent space (eqs. 25-26), so for the oracle J_O P d2I = 0 and its own curvature
term is d2C_ij - tau_ij.  A network fits E2 only if its curvature term and its response to
the normal part of d2I together supply d2C_ij - tau_ij.

`decompose` measures the three parts for a network on images of a split (order 2), and the
oracle's tau and d2C - tau, as root-mean-square norms over the images per pair.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .geometry import PAIRS


@dataclass
class Decomposition:
    """Per pair [21], rms over images of the 9-output norms (targets in their own units)."""

    total: torch.Tensor  # d2N_ij
    curvature: torch.Tensor  # H_N[dI_i, dI_j]
    normal: torch.Tensor  # J_N P d2I_ij
    tangential: torch.Tensor  # J_N T d2I_ij = sum_k c_k dN/dnu_k
    error: torch.Tensor  # d2N_ij - d2C_ij
    target: torch.Tensor  # d2C_ij
    tau: torch.Tensor  # sum_k c_k dC/dnu_k: the tangential part of a network with exact dN/dnu
    tau_by_motion: torch.Tensor  # [21, 6] the same for each term c_k dC/dnu_k alone
    needed: torch.Tensor  # d2C_ij - tau_ij: what curvature and normal response must supply


def _rms(x: torch.Tensor) -> torch.Tensor:
    """[B, 21, 9] -> [21]: root mean square over images of the per-image norm."""
    return x.norm(dim=-1).pow(2).mean(0).sqrt()


def tangent_split(d1: torch.Tensor, d2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients c [B, 21, 6] of T d2I_ij in the basis dI_k, and P d2I_ij [B, 21, P]."""
    J = d1.flatten(2).double()  # [B, 6, P]
    H = d2.flatten(2).double()  # [B, 21, P]
    gram = J @ J.transpose(1, 2)  # [B, 6, 6]
    c = torch.linalg.solve(gram[:, None], (H @ J.transpose(1, 2))[..., None]).squeeze(-1)  # [B, 21, 6]
    return c, H - c @ J


def decompose(model, split, n: int = 512) -> Decomposition:
    """The decomposition for `model` on the first `n` images of `split` (order 2), in float64."""
    n = min(n, len(split))
    net = copy.deepcopy(model).double()  # .double() converts in place: leave the caller's network as it is
    x = split.image[:n].reshape(n, 1, -1).double()
    d1 = split.d1[:n].reshape(n, 6, -1).double()
    d2 = split.d2[:n].reshape(n, 21, -1).double()
    c, normal_rows = tangent_split(d1, d2)
    with torch.no_grad():
        _, y1, y2 = net.jet_rows(torch.cat([x, d1, d2], 1), 6, PAIRS)  # dN/dnu [n, 6, 9], d2N [n, 21, 9]
        _, along, _ = net.jet_rows(torch.cat([x, d2, normal_rows], 1), 42)  # J_N d2I, J_N P d2I
    response, normal = along[:, :21], along[:, 21:]
    target_d1, target_d2 = split.target_d1[:n].double(), split.target_d2[:n].double()
    tau = c @ target_d1
    by_motion = torch.stack([_rms(c[..., k:k + 1] * target_d1[:, None, k]) for k in range(6)], -1)
    return Decomposition(total=_rms(y2), curvature=_rms(y2 - response), normal=_rms(normal),
                         tangential=_rms(c @ y1), error=_rms(y2 - target_d2), target=_rms(target_d2),
                         tau=_rms(tau), tau_by_motion=by_motion, needed=_rms(target_d2 - tau))
