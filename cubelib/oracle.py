"""The oracle (eq. 9) and its Taylor expansion (eqs. 23, 25-26, 51).

O(F) = argmin_C ||I(C) - F||^2: the cube whose image is nearest.  For an image close to the
manifold, F = I(C) + eps D, the answer is T(nu(eps)) C with
    Gamma a = J^T D                                         (eq. 23, a = dnu/deps)
    Gamma b = 2 (D.H_ik) a_k - 2 (H_ik.J_p) a_p a_k - (J_i.H_kp) a_k a_p   (eq. 51, b = d2nu/deps2)
where J_i = dI/dnu_i, H_ij = d2I/dnu_i dnu_j and Gamma_ij = J_i.J_j (the Gram matrix), so
    dO/dD = dC/dnu_i a_i,   d2O/dD2 = dC/dnu_i b_i + d2C/dnu_i dnu_j a_i a_j.
The gradient of output k is grad O_k = J^T Gamma^-1 dC_k/dnu (eqs. 25-26): every oracle
gradient lies in the 6-dimensional tangent space.

`nonlinear` solves eq. (9) itself by Levenberg-Marquardt in the local coordinates nu, with the
exact image Jacobian; it reports per image how it ended instead of returning a silent guess.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import geometry, render

# Gram matrices with a condition number above this are "special points" (section 4.4.1).
SINGULAR_CONDITION = 1e10


def _flat(x):
    return x.reshape(*x.shape[:-2], -1)


def gram(d1: torch.Tensor) -> torch.Tensor:
    """Gamma_ij = dI/dnu_i . dI/dnu_j (eq. 23): d1 [B, 6, 41, 41] -> [B, 6, 6]."""
    J = _flat(d1)
    return J @ J.transpose(-1, -2)


def check_gram(G: torch.Tensor) -> torch.Tensor:
    """Condition numbers [B]; raises ValueError naming the images at special points."""
    cond = torch.linalg.cond(G)
    bad = (~torch.isfinite(cond)) | (cond > SINGULAR_CONDITION)
    if bool(bad.any()):
        raise ValueError(f"singular Gram matrix (condition > {SINGULAR_CONDITION:.0e}) for images "
                         f"{bad.nonzero().flatten().tolist()}: the tangent images are linearly dependent "
                         "there, so the oracle's expansion does not exist")
    return cond


@dataclass
class Expansion:
    """First- (and second-) order oracle response to directions D at clean cubes."""

    dnu: torch.Tensor  # [B, M, 6] dnu/deps (eq. 23)
    dO: torch.Tensor  # [B, M, 9] dO/dD
    d2nu: torch.Tensor | None = None  # [B, M, 6] d2nu/deps2 (eq. 51)
    d2O: torch.Tensor | None = None  # [B, M, 9] d2O/dD2
    condition: torch.Tensor | None = None  # [B] condition numbers of Gamma


@dataclass
class Tangent:
    """What the expansion needs of each clean cube, computed once: the tangent images
    J = dI/dnu [B, 6, P], the image Hessian H [B, 21, P] (order 2), their products with
    each other, and the cube's own derivatives.  J and H may be float32 views of training
    data; the small matrices are float64, so the 6 x 6 solves keep their precision."""

    J: torch.Tensor  # [B, 6, P]
    G: torch.Tensor  # [B, 6, 6] float64, Gamma (eq. 23)
    dC: torch.Tensor  # [B, 6, 9] float64, dC/dnu_i
    condition: torch.Tensor  # [B]
    H: torch.Tensor | None = None  # [B, 21, P], pairs i <= j
    HJ: torch.Tensor | None = None  # [B, 21, 6] float64, H_pair . J_j
    C2: torch.Tensor | None = None  # [B, 21, 9] float64, d2C/dnu_i dnu_j

    def __getitem__(self, rows):
        return Tangent(**{k: None if v is None else v[rows] for k, v in vars(self).items()})

    def __len__(self):
        return self.J.shape[0]


def tangent(vertices: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor | None = None,
            chunk: int = 1024) -> Tangent:
    """The expansion's constants at clean cubes: vertices [B, 8, 3], d1 [B, 6, ...] and for
    order 2 d2 [B, 21, ...] (any float dtype, kept as given).  Raises ValueError at special
    points (singular Gamma)."""
    B = vertices.shape[0]
    J = d1.reshape(B, 6, -1)
    H = None if d2 is None else d2.reshape(B, 21, -1)
    G = torch.empty(B, 6, 6, dtype=torch.float64, device=J.device)
    HJ = None if H is None else torch.empty(B, 21, 6, dtype=torch.float64, device=J.device)
    for i in range(0, B, chunk):  # float64 products, a chunk at a time (H of a data set is GBs)
        Jc = J[i:i + chunk].double()
        G[i:i + chunk] = Jc @ Jc.transpose(-1, -2)
        if H is not None:
            HJ[i:i + chunk] = H[i:i + chunk].double() @ Jc.transpose(-1, -2)
    cond = check_gram(G)
    v = vertices.to(J.device, torch.float64)
    return Tangent(J=J, G=G, dC=geometry.target(geometry.vertex_d1(v)), condition=cond, H=H, HJ=HJ,
                   C2=None if H is None else geometry.target(geometry.vertex_d2(v)))


def along(t: Tangent, D: torch.Tensor, order: int = 1) -> Expansion:
    """Oracle derivatives along flat image directions D [B, M, P] at the cubes of `t`.

    The two big products D.J and D.H run in D's dtype (float32 in training: each is a sum of
    1681 terms, correct to ~1e-7 of ||D|| ||J||, below the 1e-6 of the finite-difference H);
    everything after them is float64."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if order == 2 and t.H is None:
        raise ValueError("order 2 needs a Tangent made with the image Hessian d2")
    a = torch.linalg.solve(t.G[:, None], (D @ t.J.to(D.dtype).transpose(-1, -2)).double()[..., None]).squeeze(-1)
    out = Expansion(dnu=a, dO=a @ t.dC, condition=t.condition)
    if order == 2:
        S = geometry.SYMMETRIC.to(D.device)
        DH = (D @ t.H.to(D.dtype).transpose(-1, -2)).double()[..., S]  # [B, M, 6, 6], D . H_ik
        HJ = t.HJ[:, S]  # [B, 6, 6, 6]: [k, i, j] = H_ki . J_j
        first = 2 * torch.einsum("bmik,bmk->bmi", DH, a)
        second = 2 * torch.einsum("bkip,bmp,bmk->bmi", HJ, a, a)
        third = torch.einsum("bkpi,bmk,bmp->bmi", HJ, a, a)
        b = torch.linalg.solve(t.G[:, None], (first - second - third)[..., None]).squeeze(-1)
        out.d2nu = b
        out.d2O = b @ t.dC + torch.einsum("bijo,bmi,bmj->bmo", t.C2[:, S], a, a)
    return out


def expand(vertices: torch.Tensor, result: render.RenderResult, directions: torch.Tensor,
           order: int = 1) -> Expansion:
    """Oracle derivatives along image directions.

    vertices [B, 8, 3] and their render result (order >= `order`); directions [B, M, 41, 41]
    (or [M, 41, 41], shared by all cubes).  Raises ValueError at special points.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if result.d1 is None or (order == 2 and result.d2 is None):
        raise ValueError(f"the render result must hold derivatives up to order {order}")
    B = vertices.shape[0]
    D = _flat(directions)
    if D.ndim == 2:
        D = D.expand(B, *D.shape)
    t = tangent(vertices, result.d1, result.d2 if order == 2 else None)
    return along(t, D.to(t.J.dtype), order)


def gradients(vertices: torch.Tensor, result: render.RenderResult) -> torch.Tensor:
    """grad O_k for the 9 outputs (eqs. 25-26): [B, 9, 41, 41], all in the tangent space."""
    J = _flat(result.d1)
    G = gram(result.d1)
    check_gram(G)
    dC = geometry.target(geometry.vertex_d1(vertices))  # [B, 6, 9]
    nu = torch.linalg.solve(G, dC)  # [B, 6, 9]: Gamma nu = dC_k/dnu, one column per output
    return (nu.transpose(-1, -2) @ J).reshape(J.shape[0], 9, *result.d1.shape[-2:])


# --------------------------------------------------------------------------------------
# The nonlinear oracle

@dataclass
class OracleResult:
    vertices: torch.Tensor  # [B, 8, 3] the cube found
    iterations: torch.Tensor  # [B]
    residual: torch.Tensor  # [B] ||I(C) - F||
    grad_norm: torch.Tensor  # [B] ||J^T (I(C) - F)|| at the end
    status: list  # per image: "converged", "max_iterations" or "failed: <why>" (e.g. the cube left the frame)

    @property
    def converged(self) -> torch.Tensor:
        return torch.tensor([s == "converged" for s in self.status])


def nonlinear(images: torch.Tensor, start: torch.Tensor, max_iterations: int = 50, grad_tol: float = 1e-12,
              step_tol: float = 1e-14, damping: float = 1e-6) -> OracleResult:
    """Solve eq. (9) for each image [B, 41, 41] from the starting cubes [B, 8, 3].

    Levenberg-Marquardt in the local coordinates: at the current cube C, solve
    (Gamma + lambda diag Gamma) delta = -J^T r with r = I(C) - F, move to T(delta) C if the
    residual does not rise beyond rounding (lambda / 3), otherwise retry with lambda * 10.
    Converged when ||J^T r|| <= ||J|| (grad_tol ||r|| + 1e-14) (optimality at the rounding
    level of the product and of the rendered pixels) or when an accepted step is below step_tol.
    """
    if images.shape[-2:] != (render.RESOLUTION, render.RESOLUTION):
        raise ValueError(f"images must be [B, 41, 41], got {tuple(images.shape)}")
    geometry.check_vertices(start, "start")
    if not (isinstance(max_iterations, int) and max_iterations >= 1):
        raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    F = images.to(torch.float64)
    C = start.to(torch.float64).clone()
    B = C.shape[0]
    lam = torch.full((B,), damping, dtype=torch.float64)
    active = torch.ones(B, dtype=torch.bool)
    iters = torch.zeros(B, dtype=torch.long)
    status = ["max_iterations"] * B
    r = render.render(C, order=1, check=False)
    res = (r.image - F).flatten(1)
    cost = (res**2).sum(1)
    for _ in range(max_iterations):
        idx = active.nonzero().flatten()
        if len(idx) == 0:
            break
        J = r.d1[idx].flatten(2)  # [b, 6, P]
        g = (J @ res[idx, :, None]).squeeze(-1)  # J^T r
        # first-order optimality down to its rounding floor: J^T r = 0 up to grad_tol of the
        # terms it sums, plus the pixels' own error (~1e-16 each, 1e-14 over the image)
        Jn = J.flatten(1).norm(dim=1)
        done = g.norm(dim=1) <= Jn * (grad_tol * res[idx].norm(dim=1) + 1e-14)
        for k in idx[done].tolist():
            status[k] = "converged"
            active[k] = False
        idx, J, g = idx[~done], J[~done], g[~done]
        if len(idx) == 0:
            break
        G = J @ J.transpose(1, 2)
        A = G + lam[idx, None, None] * torch.diag_embed(torch.diagonal(G, dim1=1, dim2=2))
        step = -torch.linalg.solve(A, g)
        trial = geometry.transform(C[idx], step)
        depth = geometry.DEFAULT_CAMERA.to_camera(trial)[..., 2]
        valid = (depth < -1e-6).all(1) | (depth > 1e-6).all(1)
        rt = render.render(trial, order=1, check=False)
        new_res = (rt.image - F[idx]).flatten(1)
        new_cost = (new_res**2).sum(1)
        better = valid & (new_cost <= cost[idx] * (1 + 1e-12))  # rounding-level increases allowed
        iters[idx] += 1
        acc = idx[better]
        C[acc] = trial[better]
        cost[acc] = new_cost[better]
        res[acc] = new_res[better]
        r.image[acc], r.d1[acc] = rt.image[better], rt.d1[better]
        lam[acc] = torch.clamp(lam[acc] / 3, min=1e-12)
        lam[idx[~better]] *= 10
        tiny = step.norm(dim=1) < step_tol
        for k in idx[tiny & better].tolist():
            status[k] = "converged"
            active[k] = False
        for k in idx[lam[idx] > 1e12].tolist():
            status[k] = "failed: no descent step (damping above 1e12)"
            active[k] = False
    # a cube outside the frame renders (almost) nothing and has J = 0, so J^T r = 0 would read
    # as optimal: outside the renderer's domain it is a failure, whatever the stopping rule said
    outside = geometry.DEFAULT_CAMERA.project(C).abs().amax(dim=(-1, -2)) > render.EXTENT
    for k in outside.nonzero().flatten().tolist():
        status[k] = "failed: the cube left the image frame"
    g_end = (r.d1.flatten(2) @ res[:, :, None]).squeeze(-1).norm(dim=1)
    return OracleResult(vertices=C, iterations=iters, residual=cost.sqrt(), grad_norm=g_end, status=status)
