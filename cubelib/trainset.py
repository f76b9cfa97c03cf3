"""What a training run needs besides the network: the training set on the device, the
normalisation constants of its terms, and the random draws of each epoch.

Random streams (all torch.Generator, so a run is a pure function of its recipe's seed):
    seed           the network's initial weights, then each epoch's permutation
    seed + 1       directions, augmentation noise and 003's projections, drawn per epoch
                   (their own stream, so recipes without them draw exactly the same batches)
    seed + 7919    one fixed draw of each direction family, for the n_i and c of eq. (43)
                   (any offset apart from 1 would do; 7919 is the one every stored result used)
"""
from __future__ import annotations

import torch

from . import baselines, data, directions, oracle, recipes
from . import terms as T

DIRECTION_STREAM = 1
FIXED_DRAW_STREAM = 7919


class TrainSet:
    """One split flattened for the network and kept on the training device.

    `rows` [N, R, 1681] stacks each image with its derivative images (R = 1, 7 or 28 for
    order 0, 1, 2), so a batch of the extended forward pass is one gather.  `grad_O` holds
    the oracle gradients (robust terms), `tangent` the oracle expansion's constants of every
    image (second-order robust terms)."""

    def __init__(self, split: data.Split, order: int, device, dtype=torch.float32, oracle_gradients=False,
                 tangent=False):
        n = len(split)
        self.grad_O = self.tangent = None
        if oracle_gradients:
            self.grad_O = data.oracle_gradients(split, dtype=dtype).to(device)
        parts = [split.image.reshape(n, 1, -1)]
        if order >= 1:
            parts.append(split.d1.reshape(n, 6, -1))
        if order >= 2:
            parts.append(split.d2.reshape(n, 21, -1))
        self.rows = torch.cat([p.to(device, dtype) for p in parts], 1)
        self.target = split.target.to(device, dtype)
        self.target_d1 = split.target_d1.to(device, dtype) if order >= 1 else None
        self.target_d2 = split.target_d2.to(device, dtype) if order >= 2 else None
        if tangent:
            if order < 2:
                raise ValueError("the oracle's second derivatives need the image Hessians (order 2)")
            self.tangent = oracle.tangent(split.vertices, self.rows[:, 1:7], self.rows[:, 7:28])

    def oracle_d2(self, D: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """d2O/dD2 (eq. 51) of every image along its direction D [N, P]: [N, 9]."""
        return torch.cat([oracle.along(self.tangent[i:i + chunk], D[i:i + chunk, None], order=2).d2O[:, 0]
                          for i in range(0, len(self), chunk)]).to(D.dtype)

    @property
    def x(self):
        return self.rows[:, 0]

    @property
    def pixels(self) -> int:
        return self.rows.shape[-1]

    def __len__(self):
        return self.rows.shape[0]


def prepare(recipe: recipes.Recipe, ds: data.Dataset, device) -> tuple[TrainSet, T.Norms]:
    """The training set on `device` and the norms of every term `recipe` uses."""
    if recipe.batches > len(ds.train):
        raise ValueError(f"Recipe.batches ({recipe.batches}) exceeds the {len(ds.train)} training images")
    if recipe.order > ds.config.order:
        raise ValueError(f"the recipe trains order-{recipe.order} derivatives but the data set holds only "
                         f"order {ds.config.order}; load it with order={recipe.order}")
    rows = TrainSet(ds.train, recipe.order, device, oracle_gradients=recipe.robust,
                    tangent=bool(recipe.second_families))
    n_ij = None
    if recipe.n_ij_rule is not None:
        n_ij = T.second_order_norms(ds.train.target_d2, ds.train.d2, recipe.n_ij_rule,
                                    ds.train.vertices).to(device, torch.float32)
    norms = T.Norms(n=ds.norms.n, n_i=ds.norms.n_i.to(device, torch.float32),
                    D=ds.norms.D_i.to(device, torch.float32), n_ij=n_ij)
    if recipe.robust:  # n_i and c of eq. (43) (and of R^II, §5.4), from one fixed draw of each family
        fixed = torch.Generator().manual_seed(recipe.seed + FIXED_DRAW_STREAM)
        norms.robust, norms.robust2 = {}, {}
        for f in recipe.families:
            D = _draw(f, len(rows), fixed, rows.pixels, device)
            n_i, c = T.robust_norms(rows.grad_O, D)
            norms.robust[f] = (n_i.to(device), c)
            if f in recipe.second_families:
                n_i, c = T.spread_norms(rows.oracle_d2(D))
                norms.robust2[f] = (n_i.to(device), c)
    return rows, norms


def _draw(family: str, n: int, generator: torch.Generator, pixels: int, device) -> torch.Tensor:
    # drawn on the CPU from a seeded generator, so CPU and GPU runs see the same directions
    return getattr(directions, family)(n, generator, dtype=torch.float32).reshape(n, pixels).to(device)


def draw_epoch(phase: recipes.Phase, rows: TrainSet, generator: torch.Generator, device) -> T.Epoch:
    """An epoch's fresh draws for `phase` (§4.6.1 directions, eq. 44 noise, 003's projections)."""
    n, P = len(rows), rows.pixels
    dirs = {f: _draw(f, n, generator, P, device) for f in T.families(phase.terms)}
    d2O = {f: rows.oracle_d2(dirs[f]) for f in T.second_families(phase.terms)}
    e0 = T.find(phase.terms, T.E0)
    noise = e0.noise * torch.randn(n, P, generator=generator).to(device) if e0.noise > 0 else None
    jr = T.find(phase.terms, T.JacobianNorm)
    projections = None
    if jr is not None and jr.n_proj > 0:
        projections = baselines.unit_projections(n, jr.n_proj, generator).to(device)
    return T.Epoch(dirs=dirs, d2O=d2O, noise=noise, projections=projections)
