"""Vulnerabilities on constructed cases with known answers, brute force, and a trained network."""

import pytest
import torch

from cubelib import data, geometry, oracle, render, robustness, train
from cubelib import terms as T
from cubelib.recipes import Phase, Recipe
from cubelib.robustness import V_SCALE


def oracle_like(B=2, P=40, seed=0):
    """A rank-6 'oracle' gradient set: 9 rows spanning a random 6-dimensional subspace."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(B, 6, P, generator=g, dtype=torch.float64)
    mix = torch.randn(B, 9, 6, generator=g, dtype=torch.float64)
    return mix @ basis


def test_aligned_network_has_no_vulnerability():
    gO = oracle_like()
    v = robustness.vulnerabilities(gO.clone(), gO)
    for x in (v.v_max, v.v_sen, v.v_inv):
        assert x.abs().max() < 1e-6


def test_flat_network_is_purely_invariant():
    gO = oracle_like()
    v = robustness.vulnerabilities(torch.zeros_like(gO), gO)
    assert v.v_sen.abs().max() < 1e-12
    assert torch.allclose(v.v_inv, v.v_max, rtol=1e-12)
    assert torch.allclose(v.v_max, torch.linalg.svdvals(gO)[:, 0] * V_SCALE, rtol=1e-12)


def test_network_off_the_tangent_space_is_purely_sensitive():
    gO = oracle_like()
    Q, _ = torch.linalg.qr(gO.transpose(1, 2), mode="complete")  # columns 6.. are orthogonal to grad O
    g = torch.Generator().manual_seed(5)
    gN = 100 * torch.randn(2, 9, 34, generator=g, dtype=torch.float64) @ Q[:, :, 6:].transpose(1, 2)
    v = robustness.vulnerabilities(gN, gO)
    assert torch.allclose(v.v_sen, torch.linalg.svdvals(gN)[:, 0] * V_SCALE, rtol=1e-10)
    assert torch.allclose(v.v_max, v.v_sen, rtol=1e-3)
    # the invariance attack moves only the oracle: its optimum is the oracle's own largest rate
    assert torch.allclose(v.v_inv, torch.linalg.svdvals(gO)[:, 0] * V_SCALE, rtol=1e-10)


def test_brute_force_finds_nothing_better():
    g = torch.Generator().manual_seed(2)
    gO = oracle_like(B=1, P=12, seed=3)
    gN = gO + 0.5 * torch.randn(1, 9, 12, generator=g, dtype=torch.float64)
    v = robustness.vulnerabilities(gN, gO)
    D = torch.randn(200000, 12, generator=g, dtype=torch.float64)
    D = D / D.norm(dim=1, keepdim=True)
    rate = ((gN[0] - gO[0]) @ D.T).norm(dim=0) * V_SCALE
    assert rate.max() <= v.v_max[0] * (1 + 1e-12)
    assert rate.max() > 0.95 * v.v_max[0]  # and random search comes close
    attained = ((gN[0] - gO[0]) @ v.d_max[0]).norm() * V_SCALE
    assert torch.allclose(attained, v.v_max[0], rtol=1e-12)
    # sensitivity: random unit directions orthogonal to grad O never beat it, and d_sen attains it
    Q, _ = torch.linalg.qr(gO[0].T, mode="complete")
    comp = Q[:, 6:]
    Ds = torch.randn(100000, 6, generator=g, dtype=torch.float64) @ comp.T
    Ds = Ds / Ds.norm(dim=1, keepdim=True)
    rate_s = (gN[0] @ Ds.T).norm(dim=0) * V_SCALE
    assert rate_s.max() <= v.v_sen[0] * (1 + 1e-12)
    assert (gO[0] @ v.d_sen[0]).abs().max() < 1e-12
    assert torch.allclose((gN[0] @ v.d_sen[0]).norm() * V_SCALE, v.v_sen[0], rtol=1e-12)


def test_optimal_attack_raises_the_true_error_at_the_predicted_rate(tmp_path):
    ds = data.load(data.DatasetConfig(n_train=64, n_test=4, order=1), cache_dir=tmp_path, progress=False)
    cfg = Recipe(hidden=(16, 16, 8), phases=(Phase(3, 1e-3, (T.E0(), T.E1())),), batches=4)
    model = train.train(cfg, ds, progress=False).model.double()
    V = ds.test.vertices[:2]
    r = render.render(V, order=1)
    gN = robustness.network_gradients(model, r.image)
    gO = oracle.gradients(V, r).flatten(2)
    v = robustness.vulnerabilities(gN, gO)
    D = v.d_max.reshape(2, 41, 41)
    base = model(r.image.flatten(1)) - geometry.target(V)
    for eps in (1e-3, 1e-4):
        moved = oracle.nonlinear(r.image + eps * D, V)
        assert all(s == "converged" for s in moved.status), (moved.status, moved.grad_norm, moved.iterations)
        err = model((r.image + eps * D).flatten(1)) - geometry.target(moved.vertices)
        rate = (err - base).norm(dim=1) / eps * V_SCALE
        assert torch.allclose(rate, v.v_max, rtol=20 * eps), (rate, v.v_max)


def test_bad_arguments():
    gO = oracle_like()
    with pytest.raises(ValueError, match="invariance_basis"):
        robustness.vulnerabilities(gO, gO, invariance_basis="mine")
    with pytest.raises(ValueError, match="same shape"):
        robustness.vulnerabilities(gO[:, :8], gO)


def test_one_output_attack_directions():
    g = torch.Generator().manual_seed(7)
    gN = torch.randn(3, 50, generator=g, dtype=torch.float64)
    gO = torch.randn(3, 50, generator=g, dtype=torch.float64)
    d_inv, d_sen = robustness.one_output_attacks(gN, gO)
    assert (d_inv * gN).sum(-1).abs().max() < 1e-12  # the network does not see D_inv
    assert ((d_inv * gO).sum(-1) > 0).all()  # the oracle does
    assert (d_sen * gO).sum(-1).abs().max() < 1e-12
    d_inv, d_sen = robustness.one_output_attacks(gO, gO)
    assert d_inv.abs().max() < 1e-12 and d_sen.abs().max() < 1e-12  # aligned: both vanish


def test_measure_is_the_mean_of_the_per_image_vulnerabilities():
    """robustness.measure (batched, as results use it) against vulnerabilities() on all
    images at once, with the oracle gradients of the data split."""
    from cubelib import data, jets
    ds = data.load(data.DatasetConfig(n_train=8, n_test=6, order=1), progress=False)
    torch.manual_seed(0)
    net = jets.MLP((8, 8)).double()
    grad_O = data.oracle_gradients(ds.test)
    assert grad_O.shape == (6, 9, 1681)
    assert torch.equal(data.oracle_gradients(ds.test, 4, batch=3), grad_O[:4])
    assert data.oracle_gradients(ds.test) is grad_O  # computed once per split
    # training's float32 copy is rounded batch by batch: bit for bit the float64 ones rounded
    g32 = data.oracle_gradients(ds.test, batch=4, dtype=torch.float32)
    assert g32.dtype == torch.float32 and torch.equal(g32, grad_O.float())
    got = robustness.measure(net, ds.test.image.double(), grad_O, batch=4)
    ref = robustness.vulnerabilities(robustness.network_gradients(net, ds.test.image.double()), grad_O).means()
    for k in ("v_max", "v_sen", "v_inv"):
        assert abs(got[k] - ref[k]) < 1e-9 * ref[k]


def test_fast_top_and_complement_match_an_svd():
    """_top (via the 9 x 9 Gram matrix) and _complement (via QR) against SVD references,
    including a basis with zero and dependent rows."""
    g = torch.Generator().manual_seed(5)
    A = torch.randn(6, 9, 300, generator=g, dtype=torch.float64) * torch.logspace(0, -3, 9, dtype=torch.float64)[:, None]
    m, v = robustness._top(A)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    assert torch.allclose(m, S[:, 0] ** 2, rtol=1e-12)
    assert torch.allclose((v * Vh[:, 0]).sum(-1).abs(), torch.ones(6, dtype=torch.float64), atol=1e-10)
    basis = torch.randn(6, 6, 300, generator=g, dtype=torch.float64)
    basis[:, 0] = 0  # a zero row first
    basis[:, 3] = 2 * basis[:, 1] - basis[:, 2]  # a dependent one
    _, Sb, Vb = torch.linalg.svd(basis, full_matrices=False)
    Q = Vb[:, :4]  # the span has dimension 4
    ref = A - (A @ Q.transpose(1, 2)) @ Q
    assert torch.allclose(robustness._complement(A, basis), ref, atol=1e-12)
