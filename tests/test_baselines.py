"""The baselines of papers 002-004 against torch.func / autograd references in float64."""
import dataclasses

import pytest
import torch
from torch.func import functional_call, jacrev, jvp

from cubelib import analyses, baselines, data, experiments, inputspace, jets, store, train
from cubelib import terms as T


@pytest.fixture(scope="module")
def smoke_dataset(tmp_path_factory):
    cfg = data.DatasetConfig(n_train=48, n_test=16, order=1)
    return data.load(cfg, cache_dir=tmp_path_factory.mktemp("c"), progress=False)

N_SCALE = 0.7  # stands in for n = avg ||C||


def _net(inputs=1681, hidden=(12, 10, 8), seed=0):
    return jets.MLP(hidden, inputs=inputs, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _jacobian(net, x):
    """[B, 9, P] by torch.func.jacrev, one image at a time."""
    return torch.stack([jacrev(lambda z: net(z[None])[0])(xi) for xi in x])


def test_pullback_is_the_vector_jacobian_product():
    net = _net()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1681, generator=g, dtype=torch.float64)
    v = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)
    y, pull = net.pullback(x)
    assert torch.allclose(y, net(x), rtol=0, atol=1e-14)
    ref = torch.einsum("bmo,bop->bmp", v, _jacobian(net, x))
    assert torch.allclose(pull(v), ref, rtol=1e-12, atol=1e-14)


def test_loss_and_error_gradients_match_autograd():
    net = _net()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1681, generator=g, dtype=torch.float64)
    C = torch.randn(4, 9, generator=g, dtype=torch.float64)
    y, pull = net.pullback(x)
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad((((net(xr) - C) ** 2).sum(-1) / N_SCALE**2).sum(), xr)
    assert torch.allclose(baselines.loss_gradient(y, pull, C, N_SCALE), ref, rtol=1e-12, atol=1e-15)
    (ref,) = torch.autograd.grad(((net(xr) - C).norm(dim=-1) / N_SCALE).sum(), xr)
    assert torch.allclose(baselines.error_gradient(y, pull, C, N_SCALE), ref, rtol=1e-12, atol=1e-15)


def test_double_backprop_gradient_of_loss_ibp_matches_autograd():
    """The weight gradient of Loss IBP through `pullback` equals the create_graph reference."""
    net = _net()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 1681, generator=g, dtype=torch.float64)
    C = torch.randn(5, 9, generator=g, dtype=torch.float64)
    for norm in ("l1", "l2"):
        y, pull = net.pullback(x)
        ours = torch.autograd.grad(baselines.penalty(baselines.loss_gradient(y, pull, C, N_SCALE), norm).sum(),
                                   list(net.parameters()))
        xr = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad((((net(xr) - C) ** 2).sum(-1) / N_SCALE**2).sum(), xr, create_graph=True)
        pen = gx.abs().sum() if norm == "l1" else 0.5 * (gx**2).sum()
        ref = torch.autograd.grad(pen, list(net.parameters()))
        for a, b in zip(ours, ref):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


def test_penalties_and_norms():
    v = torch.tensor([[3.0, -4.0, 1.0]], dtype=torch.float64)
    assert baselines.penalty(v, "l1").item() == 8.0
    assert baselines.penalty(v, "l2").item() == 13.0
    assert baselines.vector_norm(v, "l2").item() == pytest.approx(26**0.5)
    assert baselines.vector_norm(v, "linf").item() == 4.0
    with pytest.raises(ValueError, match="l1"):
        baselines.penalty(v, "linf")
    with pytest.raises(ValueError, match="norm must be one of"):
        baselines.vector_norm(v, "l3")


def test_exact_frobenius_and_the_projection_estimate():
    """Eq. (6) exactly; eq. (7): C E|v.J|^2 over the unit sphere is ||J||_F^2 (mean of many
    draws within 4 standard errors); the estimate's error falls as n_proj^(-1/2)."""
    net = _net()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 1681, generator=g, dtype=torch.float64)
    y, pull = net.pullback(x)
    exact = baselines.jacobian_frobenius(y, pull, N_SCALE)
    ref = (_jacobian(net, x) ** 2).sum((-1, -2)) / N_SCALE**2
    assert torch.allclose(exact, ref, rtol=1e-12)
    draws = torch.stack([baselines.jacobian_frobenius(y, pull, N_SCALE, baselines.unit_projections(6, 1, g).double())
                         for _ in range(4000)]).detach()
    sem = draws.std(0) / 4000**0.5
    assert ((draws.mean(0) - exact).abs() < 4 * sem).all()
    err = inputspace.projection_errors(net, x, N_SCALE, n_projs=(1, 4, 16, 64), draws=200)
    rate = torch.log(torch.tensor(err["per_image"][0] / err["per_image"][-1])) / torch.log(torch.tensor(64.0))
    assert 0.4 < rate.item() < 0.6  # slope 1/2 on a log-log plot


def _batch(order=1, n=6, seed=5):
    g = torch.Generator().manual_seed(seed)
    rows = torch.rand(n, 1 + 6 * order, 1681, generator=g, dtype=torch.float64)
    target = torch.randn(n, 9, generator=g, dtype=torch.float64)

    class Batch:
        pass

    b = Batch()
    b.rows, b.target = rows, target
    b.target_d1 = torch.randn(n, 6, 9, generator=g, dtype=torch.float64)
    return b


def _norms():
    return T.Norms(n=N_SCALE, n_i=torch.linspace(0.5, 1.5, 6, dtype=torch.float64), D=torch.ones(9))


def ev(net, b, idx, terms, norms, projections=None):
    """The terms on rows `idx` with no per-epoch draws but 003's projections."""
    return T.evaluate(net, b, idx, (T.E0(), *terms), norms, T.Epoch(dirs={}, d2O={}, projections=projections))


def _setup():
    """A float64 network, a batch with tangent rows, its rows, images, targets, norms, and the
    network as a function for torch.func."""
    net = _net()
    b = _batch()
    params = dict(net.named_parameters())
    return net, b, torch.arange(6), b.rows[:, 0], b.target, _norms(), lambda z: functional_call(net, params, (z,))


def test_terms_match_torch_func_references():
    net, b, idx, x, C, norms, f = _setup()
    for norm in ("l1", "l2"):
        out = ev(net, b, idx, (T.LossIBP(0.3, norm), T.PredictionIBP(0.3, norm), T.TangentBP(0.3, norm)), norms)
        assert out["E0"].item() == pytest.approx((((net(x) - C) ** 2).sum(-1) / N_SCALE**2).mean().item(), rel=1e-12)
        xr = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad((((net(xr) - C) ** 2).sum(-1) / N_SCALE**2).sum(), xr)
        pen = (lambda v: v.abs().sum(-1)) if norm == "l1" else (lambda v: 0.5 * (v**2).sum(-1))
        assert out["IBP_loss"].item() == pytest.approx(0.3 * pen(gx).mean().item(), rel=1e-10)
        _, along = jvp(f, (x,), (gx,))
        assert out["IBP_pred"].item() == pytest.approx(0.3 * pen(along / N_SCALE).mean().item(), rel=1e-10)
        tbp = sum(pen(jvp(f, (x,), (b.rows[:, 1 + i],))[1] / norms.n_i[i]) for i in range(6))
        assert out["TBP"].item() == pytest.approx(0.3 * tbp.mean().item(), rel=1e-10)
    J = _jacobian(net, x) / N_SCALE
    out = ev(net, b, idx, (T.JacobianNorm(0.2, n_proj=0),), norms)
    assert out["JR"].item() == pytest.approx(0.1 * (J**2).sum((-1, -2)).mean().item(), rel=1e-10)
    v = baselines.unit_projections(6, 3, torch.Generator().manual_seed(0)).double()
    out = ev(net, b, idx, (T.JacobianNorm(0.2, n_proj=3),), norms, projections=v)
    est = 9 * (torch.einsum("bmo,bop->bmp", v, J) ** 2).sum(-1).mean(-1)
    assert out["JR"].item() == pytest.approx(0.1 * est.mean().item(), rel=1e-10)
    r = net(x) - C
    gd = torch.einsum("bo,bop->bp", r / r.norm(dim=-1, keepdim=True), J)
    for norm, ref in (("l1", gd.abs().sum(-1)), ("l2", gd.norm(dim=-1)), ("linf", gd.abs().amax(-1))):
        out = ev(net, b, idx, (T.GradientReg(2.0, norm),), norms)
        assert out["GR"].item() == pytest.approx(2.0 * ref.mean().item(), rel=1e-10)


def _weight_grads(loss, net):
    """d loss / d weights; derivative terms do not depend on the last bias (zero there)."""
    params = list(net.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def test_weight_gradients_of_prediction_ibp_jr_and_gr_match_autograd():
    """Double backpropagation through `terms` against references written with create_graph:
    Prediction IBP with the loss gradient held constant (002), JR exact and projected, GR."""
    net, b, idx, x, C, norms, f = _setup()
    e0 = lambda z: (((net(z) - C) ** 2).sum(-1) / N_SCALE**2)

    def input_grad(fun, create_graph):
        xr = x.clone().requires_grad_(True)
        return torch.autograd.grad(fun(xr).sum(), xr, create_graph=create_graph)[0]

    ours = _weight_grads(ev(net, b, idx, (T.PredictionIBP(),), norms)["IBP_pred"], net)
    gx = input_grad(e0, False)  # constant, as 002's third pass
    ref = _weight_grads((jvp(f, (x,), (gx,))[1] / N_SCALE).abs().sum(-1).mean(), net)
    assert all(torch.allclose(a, r, rtol=1e-10, atol=1e-13) for a, r in zip(ours, ref))

    v = baselines.unit_projections(6, 2, torch.Generator().manual_seed(1)).double()
    for proj in (None, v):
        jr = T.JacobianNorm(n_proj=0 if proj is None else 2)
        ours = _weight_grads(ev(net, b, idx, (jr,), norms, projections=proj)["JR"], net)
        rows = proj if proj is not None else torch.eye(9, dtype=torch.float64).expand(6, 9, 9)
        fro = 0
        for m in range(rows.shape[1]):
            fro = fro + (input_grad(lambda z: (net(z) * rows[:, m]).sum(-1) / N_SCALE, True) ** 2).sum(-1)
        fro = fro if proj is None else 9 * fro / rows.shape[1]
        ref = _weight_grads(0.5 * fro.mean(), net)
        assert all(torch.allclose(a, r, rtol=1e-10, atol=1e-13) for a, r in zip(ours, ref))

    ours = _weight_grads(ev(net, b, idx, (T.GradientReg(norm="l2"),), norms)["GR"], net)
    gd = input_grad(lambda z: (net(z) - C).norm(dim=-1) / N_SCALE, True)
    ref = _weight_grads(gd.norm(dim=-1).mean(), net)
    assert all(torch.allclose(a, r, rtol=1e-9, atol=1e-12) for a, r in zip(ours, ref))


def test_fast_adversarial_training_moves_e0_to_the_adversarial_images():
    net = _net()
    b = _batch(order=0)
    idx = torch.arange(6)
    x, C = b.rows[:, 0], b.target
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad((((net(xr) - C) ** 2).sum(-1)).sum(), xr)
    x_adv = x + 0.01 * torch.sign(gx)
    draws = T.Epoch(dirs={}, d2O={})
    out = T.evaluate(net, b, idx, (T.E0(adversarial_eps=0.01),), _norms(), draws)
    ref = (((net(x_adv) - C) ** 2).sum(-1) / N_SCALE**2).mean()
    assert out["E0"].item() == pytest.approx(ref.item(), rel=1e-12)
    assert out["E0"].item() > T.evaluate(net, b, idx, (T.E0(),), _norms(), draws)["E0"].item()
    # x* is a constant: the weight gradient is E0's at x*, with no path through sign(grad)
    ours = _weight_grads(out["E0"], net)
    ref = _weight_grads((((net(x_adv) - C) ** 2).sum(-1) / N_SCALE**2).mean(), net)
    assert all(torch.allclose(a, r, rtol=1e-12, atol=1e-15) for a, r in zip(ours, ref))


def test_power_iteration_finds_the_top_hessian_eigenvalue():
    """Against eigvalsh of the full Hessian (torch.func) for a small input dimension."""
    net = _net(inputs=20, hidden=(16, 12))
    g = torch.Generator().manual_seed(6)
    x = torch.rand(5, 20, generator=g, dtype=torch.float64)
    k = 3
    lam = inputspace._power_iteration(x, lambda z: net(z)[:, k], 300, g)
    rms = inputspace._hessian_rms(x, lambda z: net(z)[:, k], 4000, g)
    for i in range(5):
        H = torch.func.hessian(lambda z: net(z[None])[0, k])(x[i])
        eig = torch.linalg.eigvalsh(H)
        assert lam[i].item() == pytest.approx(eig.abs().max().item(), rel=1e-3)  # slow where |l2| ~ |l1|
        # Hutchinson: tr(H^2) = E||Hv||^2 over Rademacher v, 4000 probes: a few % at most
        assert rms[i].item() == pytest.approx((eig**2).mean().sqrt().item(), rel=0.05)


def test_indicator_jacobian_terms_match_jacrev():
    net = _net(hidden=(6, 5))
    g = torch.Generator().manual_seed(7)
    images = torch.rand(3, 41, 41, generator=g, dtype=torch.float64)
    C = torch.randn(3, 9, generator=g, dtype=torch.float64)
    ind = inputspace.indicator(net.float(), images, C, N_SCALE, iterations=5)
    net = net.double()
    J = _jacobian(net, images.reshape(3, -1)) / N_SCALE
    assert ind["J_out"] == pytest.approx(J.abs().mean().item(), rel=1e-5)
    r = net(images.reshape(3, -1)) - C
    gd = torch.einsum("bo,bop->bp", r / r.norm(dim=-1, keepdim=True), J)
    assert ind["J_err"] == pytest.approx(gd.abs().mean().item(), rel=1e-5)
    assert ind["H_out"] > 0 and ind["H_err"] > 0


def test_spearman():
    assert inputspace.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert inputspace.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


@pytest.mark.parametrize("make,match", [
    (lambda: T.GradientReg(norm="l3"), "GradientReg.norm"), (lambda: T.JacobianNorm(n_proj=-1), "n_proj"),
    (lambda: T.E0(adversarial_eps=2.0), "adversarial_eps"), (lambda: T.LossIBP(-1.0), "LossIBP.weight"),
    (lambda: T.LossIBP(norm="linf"), "LossIBP.norm")])
def test_terms_reject_bad_baseline_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_baseline_experiment_validation_and_keys():
    with pytest.raises(ValueError, match="unknown baseline method"):
        experiments.baseline("smoke", "mixup", 1.0)
    with pytest.raises(ValueError, match="strength"):
        experiments.baseline("smoke", "jr", 0)
    with pytest.raises(ValueError, match="fast-at"):
        experiments.baseline("smoke", "fast-at", 2.0)
    keys = {e.key() for e in experiments.baseline_experiments("quick")}
    # every strength of every method a distinct experiment (quick sweeps them all)
    n_strengths = sum(len(s) for s in experiments.BASELINE_STRENGTHS.values())
    assert len(keys) == len(experiments.baseline_experiments("quick")) == n_strengths == 50


@pytest.mark.parametrize("method", list(experiments.BASELINE_METHODS))
def test_baseline_training_runs_and_resumes_bit_exactly(smoke_dataset, tmp_path, method):
    """Every method (JR with projections drawn every epoch, fast AT, ...): a run interrupted
    after epoch 2 resumes to the same weights as one never interrupted."""
    strength = experiments.BASELINE_STRENGTHS[method][2]
    cfg = dataclasses.replace(experiments.baseline("smoke", method, strength).recipe, batches=4)
    full = train.train(cfg, smoke_dataset, progress=False)
    ck = tmp_path / f"{method}.pt"
    part = train.train(cfg, smoke_dataset, checkpoint=ck, progress=False, until_epoch=2)
    assert not part.complete
    rest = train.train(cfg, smoke_dataset, checkpoint=ck, progress=False)
    for a, b in zip(full.model.parameters(), rest.model.parameters()):
        assert torch.equal(a, b)
    assert all(torch.isfinite(p).all() for p in full.model.parameters())


def test_indicator_table_is_computed_once_and_then_read(tmp_path, monkeypatch, smoke_dataset):
    monkeypatch.setenv("CUBELIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CUBELIB_CACHE", str(tmp_path / "cache"))
    nets = {"a": experiments.baseline("smoke", "jr", 1e-3)}
    assert analyses.indicator_table("smoke", nets, compute=False, progress=False) is None
    made = analyses.indicator_table("smoke", nets, progress=False)
    row = made["networks"]["a"]
    assert row["e_test"] == store.load(nets["a"]).e_test and row["J_out"] > 0
    assert analyses.indicator_table("smoke", nets, compute=False, progress=False) == made
    monkeypatch.setenv("CUBELIB_NO_TRAIN", "1")
    with pytest.raises(store.TrainingDisabled):
        analyses.indicator_table("smoke", {"b": experiments.baseline("smoke", "jr", 1e-2)}, progress=False)
