"""Off the manifold: networks under Gaussian noise, against the oracle's answer (§5.4).

Noise N_sigma moves an image I(C) off the manifold, so the right answer is no longer C but
the oracle's O(I + N_sigma).  The paper takes it from the second-order expansion (eq. 52),

    O(I + N) ~ C + dO/dN + 1/2 d2O/dN2          (eqs. 23, 51 with D = N, eps = 1),

and measures the error (eq. 8) against it, and v_max (eq. 34) with the oracle's gradients at
the corrected cube.  We also solve eq. (9) itself (`oracle.nonlinear`, started from the
expansion's cube), so the book can say how good eq. (52) is at each sigma.

The corrected cube: the local coordinates nu = a + b / 2 (a = dnu/deps, b = d2nu/deps2)
give T(nu) C, a rigid cube whose outputs agree with eq. (52) to second order; we render its
tangent images for the oracle gradients.  The eq.-(52) outputs themselves are used as the
target, literally.

One standard-normal draw per image is scaled by every sigma (common random numbers), so the
curves over sigma are smooth and differences between networks are not draw noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import evaluate, geometry, oracle, render, robustness


@dataclass
class NoisyOracle:
    """The oracle's answers for the first n images of a split plus noise of one sigma."""

    sigma: float
    image: torch.Tensor  # [n, 41, 41] the noisy images I + N, float64
    target_clean: torch.Tensor  # [n, 9] C
    target_first: torch.Tensor  # [n, 9] C + dO/dN (first order only)
    target_eq52: torch.Tensor  # [n, 9] C + dO/dN + 1/2 d2O/dN2
    target_nonlinear: torch.Tensor | None  # [n, 9] eq. (9) solved (None if not asked)
    converged: torch.Tensor | None  # [n] bool, whether the nonlinear solve converged
    grad_O_clean: torch.Tensor  # [n, 9, P] at C
    grad_O_corrected: torch.Tensor  # [n, 9, P] at T(a + b/2) C


def standard_noise(n: int, seed: int) -> torch.Tensor:
    """The unit-sigma noise of the first n images: [n, 41, 41], float64, reproducible."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, render.RESOLUTION, render.RESOLUTION, generator=g, dtype=torch.float64)


# Levenberg-Marquardt's last steps near the optimum are slow at large sigma: from the clean cube
# at sigma = 0.25, 41 of 200 quick test images stop unconverged after 50 iterations, though
# within 4e-10 of the optimum (median); with 300, 197 of 200 converge
NONLINEAR_ITERATIONS = 300


def noisy_oracle(split, sigma: float, n: int, seed: int = 0, nonlinear: bool = True,
                 chunk: int = 256) -> NoisyOracle:
    """Oracle answers (eq. 52 and, if `nonlinear`, eq. 9) for I + sigma * N of the first n
    images of `split` (a data split of order 2)."""
    if not (isinstance(sigma, (int, float)) and 0 <= sigma <= 1):
        raise ValueError(f"sigma must be in [0, 1], got {sigma!r}")
    if split.d2 is None:
        raise ValueError("eq. (52) needs the image Hessians: load the data set with order=2")
    n = min(n, len(split))
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    noise = sigma * standard_noise(n, seed)
    V = split.vertices[:n]
    # the clean images rendered in float64: a stored float32 image is its cube's image only to
    # ~3e-8, and the nonlinear solve at sigma = 0 would stop at that rounding unconverged
    image = render.render(V.double(), order=0, check=False).image + noise
    parts = {k: [] for k in ("first", "eq52", "nu", "grad_clean", "grad_corr", "nonlinear", "conv")}
    for i in range(0, n, chunk):
        s = slice(i, min(i + chunk, n))
        t = oracle.tangent(V[s], split.d1[s].double(), split.d2[s].double())
        ex = oracle.along(t, noise[s].reshape(-1, 1, render.RESOLUTION**2), order=2)
        C = geometry.target(V[s])
        parts["first"].append(C + ex.dO[:, 0])
        parts["eq52"].append(C + ex.dO[:, 0] + 0.5 * ex.d2O[:, 0])
        corrected = geometry.transform(V[s], ex.dnu[:, 0] + 0.5 * ex.d2nu[:, 0])
        r = render.render(corrected, order=1, check=False)
        parts["grad_corr"].append(oracle.gradients(corrected, r).flatten(2).float())
        parts["grad_clean"].append(oracle.gradients(V[s], render.RenderResult(
            image=split.image[s].double(), d1=split.d1[s].double())).flatten(2).float())
        if nonlinear:
            sol = oracle.nonlinear(image[s], corrected, max_iterations=NONLINEAR_ITERATIONS)
            parts["nonlinear"].append(geometry.target(sol.vertices))
            parts["conv"].append(sol.converged)
    cat = lambda k: torch.cat(parts[k]) if parts[k] else None
    return NoisyOracle(sigma=float(sigma), image=image, target_clean=geometry.target(V),
                       target_first=cat("first"), target_eq52=cat("eq52"), target_nonlinear=cat("nonlinear"),
                       converged=cat("conv"), grad_O_clean=cat("grad_clean"), grad_O_corrected=cat("grad_corr"))


def error_of(model, images: torch.Tensor, target: torch.Tensor, D: torch.Tensor, device="cpu") -> float:
    """e of eq. (8) (mean over the 9 outputs, %) of `model` on images [n, 41, 41]."""
    x = images.reshape(images.shape[0], -1).to(device, torch.float32)
    return evaluate.error_e(model, x, target.to(device, torch.float32), D.to(device)).mean().item()


def oracle_gap(a: torch.Tensor, b: torch.Tensor, D: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """The difference of two oracle answers [n, 9] in the units of e (eq. 8): mean over the
    outputs of rms(a_i - b_i) / D_i, in %."""
    if mask is not None:
        a, b = a[mask], b[mask]
    return (100 * ((a - b) ** 2).mean(0).sqrt() / D.to(a)).mean().item()


def metrics(model, no: NoisyOracle, D: torch.Tensor, device="cpu") -> dict:
    """Error and v_max of `model` on the noisy images: against the clean cube ("uncorrected")
    and against the oracle's answer (eq. 52; and the nonlinear oracle where it converged)."""
    out = {"sigma": no.sigma,
           "e_uncorrected": error_of(model, no.image, no.target_clean, D, device),
           "e_corrected": error_of(model, no.image, no.target_eq52, D, device)}
    if no.target_nonlinear is not None:
        ok = no.converged
        out["e_nonlinear"] = error_of(model, no.image[ok], no.target_nonlinear[ok], D, device)
    with evaluate.fp32_matmul():
        x = no.image.to(device, torch.float32)
        out["v_max_uncorrected"] = robustness.measure(model, x, no.grad_O_clean.to(device))["v_max"]
        vul = robustness.measure(model, x, no.grad_O_corrected.to(device))
    out.update({"v_max_corrected": vul["v_max"], "v_sen_corrected": vul["v_sen"], "v_inv_corrected": vul["v_inv"]})
    return out


def oracle_summary(no: NoisyOracle, D: torch.Tensor) -> dict:
    """How far the noisy image's oracle answer is from the clean cube, and how well the
    expansion gets it: in the units of e (%), over the images where eq. (9) converged."""
    ok = no.converged if no.converged is not None else None
    out = {"sigma": no.sigma, "noise_norm": render.RESOLUTION * no.sigma,
           "correction": oracle_gap(no.target_eq52, no.target_clean, D),
           "second_order_part": oracle_gap(no.target_eq52, no.target_first, D)}
    if no.target_nonlinear is not None:
        out.update(converged=ok.float().mean().item(),
                   eq52_vs_nonlinear=oracle_gap(no.target_eq52, no.target_nonlinear, D, ok),
                   first_vs_nonlinear=oracle_gap(no.target_first, no.target_nonlinear, D, ok),
                   nonlinear_correction=oracle_gap(no.target_nonlinear, no.target_clean, D, ok))
    return out
