"""The oracle's expansion against the nonlinear oracle (eq. 9) it approximates."""
import math

import numpy as np
import pytest
import torch

from cubelib import geometry, oracle, render, sampling


def smooth_direction(seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.linspace(-1, 1, 41, dtype=torch.float64)
    v, w = torch.meshgrid(u, u, indexing="ij")
    D = sum(torch.randn(1, generator=g, dtype=torch.float64)
            * torch.cos(math.pi * (a * w + b * v) + 6 * torch.rand(1, generator=g, dtype=torch.float64))
            for a in range(4) for b in range(4))
    return D / D.norm()


def white_direction(seed):
    D = torch.randn(41, 41, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return D / D.norm()


@pytest.fixture(scope="module")
def cubes():
    V = sampling.sample_vertices(3, start=40)
    return V, render.render(V, order=2)


@pytest.mark.parametrize("make", [smooth_direction, white_direction])
def test_taylor_terms_match_the_nonlinear_oracle(cubes, make):
    V, r = cubes
    D = make(1)
    ex = oracle.expand(V, r, D[None], order=2)
    C = geometry.target(V)
    eps_list = [0.1, 0.05, 0.025, 0.0125]
    e1, e2 = [], []
    for eps in eps_list:
        found = oracle.nonlinear(r.image + eps * D, V)
        assert all(s == "converged" for s in found.status), found.status
        T = geometry.target(found.vertices)
        first = C + eps * ex.dO[:, 0]
        e1.append((T - first).norm().item())
        e2.append((T - first - eps**2 / 2 * ex.d2O[:, 0]).norm().item())
    p1 = np.diff(np.log(e1)) / np.diff(np.log(eps_list))
    p2 = np.diff(np.log(e2)) / np.diff(np.log(eps_list))
    assert np.all(np.abs(p1 - 2) < 0.05), p1  # first-order prediction: error ~ eps^2
    assert np.all(np.abs(p2 - 3) < 0.05), p2  # second-order prediction: error ~ eps^3


def test_nonlinear_oracle_recovers_clean_cubes(cubes):
    V, r = cubes
    start = geometry.transform(V, torch.tensor([0.05, -0.04, 0.03, 0.01, -0.01, 0.05], dtype=torch.float64))
    found = oracle.nonlinear(r.image, start)
    assert all(s == "converged" for s in found.status)
    assert (found.vertices - V).abs().max() < 1e-9
    assert found.residual.max() < 1e-9


def test_gradients_lie_in_the_tangent_space_and_give_the_derivatives(cubes):
    V, r = cubes
    g = oracle.gradients(V, r).flatten(2)  # [B, 9, P]
    J = r.d1.flatten(2)
    # projection onto span(J) leaves them unchanged
    coef = torch.linalg.lstsq(J.transpose(1, 2), g.transpose(1, 2)).solution
    assert (J.transpose(1, 2) @ coef - g.transpose(1, 2)).abs().max() < 1e-10
    D = torch.randn(3, 4, 41, 41, dtype=torch.float64)
    ex = oracle.expand(V, r, D)
    assert torch.allclose(torch.einsum("bkp,bmp->bmk", g, D.flatten(2)), ex.dO, atol=1e-12)
    # eq. (26): along its own normalised gradient an output changes at the rate ||grad O_k||
    k = 0
    unit = g[:, k] / g[:, k].norm(dim=1, keepdim=True)
    ex = oracle.expand(V, r, unit[:, None].reshape(3, 1, 41, 41))
    assert torch.allclose(ex.dO[:, 0, k], g[:, k].norm(dim=1), rtol=1e-10)
    # only 6 of the 9 gradients are independent
    sv = torch.linalg.svdvals(g)
    assert (sv[:, 6:] / sv[:, :1]).max() < 1e-10


def test_moving_along_a_tangent_direction_moves_the_cube(cubes):
    V, r = cubes
    nu = torch.tensor([0.3, -0.2, 0.1, 0.5, 0.2, -0.4], dtype=torch.float64)
    D = torch.einsum("i,bixy->bxy", nu, r.d1)
    ex = oracle.expand(V, r, D[:, None])
    assert torch.allclose(ex.dnu[:, 0], nu.expand(3, 6), atol=1e-10)


def test_special_points_are_reported_not_divided_through(cubes):
    V, r = cubes
    bad = render.RenderResult(image=r.image, d1=r.d1.clone())
    bad.d1[1, 5] = bad.d1[1, 4]  # two identical tangent images at cube 1
    with pytest.raises(ValueError, match=r"singular Gram matrix .* images \[1\]"):
        oracle.expand(V, bad, torch.zeros(1, 41, 41, dtype=torch.float64))


def test_failed_solves_are_reported():
    V = sampling.sample_vertices(1)
    target = torch.full((1, 41, 41), 5.0, dtype=torch.float64)  # no cube image is anywhere near
    found = oracle.nonlinear(target, V, max_iterations=3)
    # three steps cannot reach optimality here: reported as such, with the residual it has left
    assert found.status == ["max_iterations"] and found.iterations[0] == 3
    assert found.residual[0] > 100 and found.grad_norm[0] > 1
    with pytest.raises(ValueError, match="max_iterations"):
        oracle.nonlinear(target, V, max_iterations=0)


def test_a_cube_outside_the_frame_is_a_failure_not_a_solution():
    """Outside the frame the cube renders nothing, J = 0 and J^T r = 0: optimal by the
    stopping rule, but not a solve of eq. (9)."""
    V = sampling.sample_vertices(2)
    image = render.render(V, order=0).image
    start = V.clone()
    start[1, :, 0] += 20.0  # cube 1 starts far to the side: nothing of it is in the frame
    found = oracle.nonlinear(image, start, max_iterations=5)
    assert found.status[1] == "failed: the cube left the image frame"
    assert found.status[0] == "converged" and not found.converged[1]
