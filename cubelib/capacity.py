"""How the first layer's width bounds gradient alignment.

For a perceptron x -> W1 x -> ..., the input gradient of every output is W1^T (dN/dh1): it
lies in the row space S of W1, a subspace of dimension <= L fixed for all images.  Whatever
the rest of the network does, (grad N - grad O) D = -grad O D for D orthogonal to S, so

    v_max >= V_SCALE * sigma_max(grad O (I - P_S))         (per image, P_S the projector on S)

with equality when grad N = grad O P_S.  `floor(grad_O, Q)` evaluates the right side for an
orthonormal basis Q of S: the network's own first layer gives a bound that holds for that
network; the top-L principal directions of the oracle gradients estimate the floor for any
network of width L (the best subspace for the mean of sigma_max may differ slightly).
"""
from __future__ import annotations

import torch

from .robustness import V_SCALE, _top


def first_layer_basis(model) -> torch.Tensor:
    """Orthonormal basis [P, r] of the row space of the first weight matrix."""
    W1 = model.weights[0].detach().to(torch.float64)
    U, S, Vh = torch.linalg.svd(W1, full_matrices=False)
    return Vh[S > 1e-12 * S[0]].T


def principal_directions(grad_O: torch.Tensor, k: int) -> torch.Tensor:
    """The k leading principal directions [P, k] (uncentred) of all oracle-gradient rows [N, 9, P]."""
    rows = grad_O.reshape(-1, grad_O.shape[-1]).to(torch.float64)
    if not 1 <= k <= rows.shape[1]:
        raise ValueError(f"k must be in [1, {rows.shape[1]}], got {k!r}")
    _, vecs = torch.linalg.eigh(rows.T @ rows)
    return vecs[:, -k:].flip(1)


def floor(grad_O: torch.Tensor, Q: torch.Tensor | None, batch: int = 1024) -> torch.Tensor:
    """Per image, the smallest v_max (%) of any network whose gradients lie in span(Q columns)."""
    out = []
    for i in range(0, grad_O.shape[0], batch):
        g = grad_O[i:i + batch].flatten(2).to(torch.float64)
        if Q is not None and Q.shape[1] > 0:
            g = g - (g @ Q) @ Q.T
        out.append(torch.sqrt(_top(g)[0].clamp(min=0)) * V_SCALE)
    return torch.cat(out)
