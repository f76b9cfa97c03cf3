"""Trainer: determinism, exact resume, losses against direct formulas, bad configs."""
import pytest
import torch

from cubelib import data, losses, train
from cubelib.train import Phase, TrainConfig


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    cfg = data.DatasetConfig(n_train=48, n_test=16, order=2)
    return data.load(cfg, cache_dir=tmp_path_factory.mktemp("c"), progress=False)


def small(terms=("E0", "E1"), epochs=(3, 2)):
    return TrainConfig(hidden=(16, 16, 8), phases=(Phase(epochs[0], 1e-3, terms), Phase(epochs[1], 1e-4, terms)),
                       batches=4, eval_every=1)


def test_cpu_training_is_deterministic(ds):
    a = train.train(small(), ds, progress=False)
    b = train.train(small(), ds, progress=False)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert a.curves["e_test"] == b.curves["e_test"] and len(a.curves["epoch"]) == 5


def test_resume_from_a_checkpoint_is_exact(ds, tmp_path):
    full = train.train(small(), ds, progress=False)
    ck = tmp_path / "run.pt"
    part = train.train(small(), ds, checkpoint=ck, progress=False, until_epoch=2)
    assert not part.complete and part.epochs_done == 2 and ck.exists()
    rest = train.train(small(), ds, checkpoint=ck, progress=False)
    assert rest.complete and rest.resumed_from == 2
    for p, q in zip(full.model.parameters(), rest.model.parameters()):
        assert torch.equal(p, q)
    assert rest.curves["e_test"] == full.curves["e_test"]


def test_checkpoint_of_another_config_is_not_used(ds, tmp_path):
    ck = tmp_path / "run.pt"
    train.train(small(), ds, checkpoint=ck, progress=False, until_epoch=2)
    other = train.train(small(terms=("E0",)), ds, checkpoint=ck, progress=False)
    assert other.resumed_from == 0


def test_loss_terms_match_direct_formulas(ds):
    torch.manual_seed(0)
    m = train.jets.MLP((8, 8), generator=torch.Generator().manual_seed(0))
    dd = train.DeviceData(ds.train, 2, "cpu")
    dd.d1 = dd.rows[:, 1:7]
    norms = losses.Norms.from_dataset(ds, second_order=True)
    idx = torch.arange(10)
    t = losses.terms(m, dd, idx, ("E0", "E1", "E2"), norms)
    y = m(dd.x[idx])
    assert torch.allclose(t["E0"], ((y - dd.target[idx]) ** 2).sum(1).mean() / norms.n**2)
    # E1 by finite differences of the network along the image derivative: N(I + h dI) - N(I - h dI)
    h = 1e-2
    y1 = (m(dd.x[idx, None] + h * dd.d1[idx]) - m(dd.x[idx, None] - h * dd.d1[idx])) / (2 * h)
    e1 = (((y1 - dd.target_d1[idx]) ** 2).sum(-1).mean(0) / norms.n_i**2).sum()
    assert torch.allclose(t["E1"], e1, rtol=1e-3)
    assert t["E2"] > 0 and norms.n_ij.shape == (21,)


def test_error_e_is_eq_8(ds):
    m = train.jets.MLP((8,), generator=torch.Generator().manual_seed(0))
    x = ds.test.image.reshape(16, -1).float()
    e = train.error_e(m, x, ds.test.target.float(), ds.norms.D_i)
    direct = 100 * ((m(x).double() - ds.test.target) ** 2).mean(0).sqrt() / ds.norms.D_i
    assert torch.allclose(e, direct, rtol=1e-5)


def test_bad_configs(ds):
    with pytest.raises(ValueError, match="Phase.terms must include E0"):
        Phase(1, 1e-3, ("E1",))
    with pytest.raises(ValueError, match="Phase.lr"):
        Phase(1, 2.0)
    with pytest.raises(ValueError, match="batches"):
        TrainConfig(batches=0)
    low = data.DatasetConfig(n_train=4, n_test=2, order=0)
    with pytest.raises(ValueError, match="holds only order 0"):
        train.train(small(), data.build(low, progress=False), progress=False)


def test_robust_and_jacobian_terms_match_direct_formulas(ds):
    from cubelib import directions, oracle, render
    m = train.jets.MLP((8, 8), generator=torch.Generator().manual_seed(0)).double()
    dd = train.DeviceData(ds.train, 1, "cpu", dtype=torch.float64, oracle_gradients=True)
    idx = torch.arange(6)
    D = directions.low(len(ds.train), torch.Generator().manual_seed(4)).reshape(len(ds.train), -1)
    norms = losses.Norms.from_dataset(ds)
    n_i, c = losses.robust_norms(dd.grad_O, D)
    norms.robust = {"low": (n_i.double(), c)}
    t = losses.terms(m, dd, idx, ("E0", "R_low", "J_low"), norms, {"low": D}, jacobian_weight=0.5)
    # independent pieces: the network's derivative by central differences, the oracle's by eq. (23)
    h = 1e-5
    x = dd.x[idx]
    dN = (m(x + h * D[idx]) - m(x - h * D[idx])) / (2 * h)
    V = ds.train.vertices[:6]
    dO = oracle.expand(V, render.render(V, order=1), D[idx].reshape(6, 1, 41, 41)).dO[:, 0]
    R = (((dN - dO) / n_i.double()) ** 2).sum(1).mean() / c**2
    assert torch.allclose(t["R_low"], R, rtol=1e-5)
    assert torch.allclose(t["J_low"], 0.5 * (dN**2).sum(1).mean(), rtol=1e-6)
    # n_i is the 5-95 percentile range of the oracle's directional derivatives
    all_dO = torch.einsum("nkp,np->nk", dd.grad_O, D)
    assert torch.allclose(n_i.double(), torch.quantile(all_dO, 0.95, 0) - torch.quantile(all_dO, 0.05, 0), rtol=1e-5)


def robust_cfg(**kw):
    return TrainConfig(hidden=(16, 8), phases=(Phase(2, 1e-3, ("E0", "E1", "R_low", "R_mid")),
                                               Phase(1, 1e-4, ("E0", "J_high"))), batches=4, eval_every=1, **kw)


def test_robust_training_resumes_exactly_with_its_random_directions(ds, tmp_path):
    full = train.train(robust_cfg(noise_sigma=0.05), ds, progress=False)
    assert all(v is not None for v in full.curves["R_low"][:2]) and full.curves["J_high"][2] is not None
    ck = tmp_path / "r.pt"
    train.train(robust_cfg(noise_sigma=0.05), ds, checkpoint=ck, progress=False, until_epoch=1)
    rest = train.train(robust_cfg(noise_sigma=0.05), ds, checkpoint=ck, progress=False)
    for p, q in zip(full.model.parameters(), rest.model.parameters()):
        assert torch.equal(p, q)


def test_new_options_are_validated_and_leave_old_keys_alone():
    with pytest.raises(ValueError, match="noise_sigma must be in"):
        TrainConfig(noise_sigma=-0.1)
    with pytest.raises(ValueError, match="jacobian_weight must be >= 0"):
        TrainConfig(jacobian_weight=-1.0)
    assert TrainConfig().key() != TrainConfig(noise_sigma=0.05).key()
    assert TrainConfig(jacobian_weight=1.0).key() == TrainConfig().key()


def test_second_order_robust_term_matches_torch_func_and_eq_51(ds):
    """R2_low (§5.4): the network's d2N/dD2 against nested torch.func jvps in float64, the
    oracle's d2O/dD2 of the training path (float32 tangent data) against oracle.expand on
    freshly rendered float64 images."""
    from torch.func import jvp
    from cubelib import directions, oracle, render
    m = train.jets.MLP((8, 8), generator=torch.Generator().manual_seed(1)).double()
    dd = train.DeviceData(ds.train, 2, "cpu", dtype=torch.float64, oracle_gradients=True, tangent=True)
    n = len(ds.train)
    D = directions.mid(n, torch.Generator().manual_seed(5), dtype=torch.float64).reshape(n, -1)
    d2O = dd.oracle_d2(D)
    V = ds.train.vertices[:6]
    ref = oracle.expand(V, render.render(V, order=2), D[:6].reshape(6, 1, 41, 41), order=2).d2O[:, 0]
    # the data set stores images in float32 and H is a finite difference: agreement to ~1e-5
    assert torch.allclose(d2O[:6], ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    norms = losses.Norms.from_dataset(ds)
    norms.robust = {"mid": losses.robust_norms(dd.grad_O, D)}
    n_i, c = losses.spread_norms(d2O)
    norms.robust2 = {"mid": (n_i.double(), c)}
    idx = torch.arange(6)
    t = losses.terms(m, dd, idx, ("E0", "E1", "R_mid", "R2_mid"), norms, {"mid": D}, d2O={"mid": d2O})

    def dN(x):  # first derivative along D
        return jvp(m, (x,), (D[idx],))[1]

    d2N = jvp(dN, (dd.x[idx],), (D[idx],))[1]
    direct = (((d2N - d2O[idx]) / n_i.double()) ** 2).sum(1).mean() / c**2
    assert torch.allclose(t["R2_mid"], direct, rtol=1e-10)
    # the first-order term is unchanged by the extra rows the second-order pair adds
    t1 = losses.terms(m, dd, idx, ("E0", "E1", "R_mid"), norms, {"mid": D})
    assert torch.allclose(t["R_mid"], t1["R_mid"], rtol=1e-12) and torch.allclose(t["E1"], t1["E1"], rtol=1e-12)


def test_second_order_training_with_e2_and_r2_resumes_exactly(ds, tmp_path):
    cfg = TrainConfig(hidden=(16, 8), phases=(Phase(2, 1e-3, ("E0", "E1", "R_low", "R2_low")),
                                              Phase(1, 1e-4, ("E0", "E1", "E2"))), batches=4, eval_every=1)
    assert cfg.order == 2 and cfg.robust2
    full = train.train(cfg, ds, progress=False)
    assert full.curves["R2_low"][0] is not None and full.curves["E2"][2] is not None
    ck = tmp_path / "r2.pt"
    train.train(cfg, ds, checkpoint=ck, progress=False, until_epoch=1)
    rest = train.train(cfg, ds, checkpoint=ck, progress=False)
    for p, q in zip(full.model.parameters(), rest.model.parameters()):
        assert torch.equal(p, q)


def test_n_ij_rules(ds):
    """Rotation pairs get avg ||d2C||; the others avg ||d2I|| / r ("scaled") or its inverse
    ("printed"), r being the rotation pairs' average ||d2I||."""
    from cubelib.geometry import PAIRS
    scaled = losses.second_order_norms(ds.train.target_d2, ds.train.d2, "scaled")
    printed = losses.second_order_norms(ds.train.target_d2, ds.train.d2, "printed")
    rot = torch.tensor([j < 3 for _, j in PAIRS])
    img = ds.train.d2.flatten(2).double().norm(dim=-1).mean(0)
    assert torch.allclose(scaled[rot], ds.train.target_d2.norm(dim=-1).mean(0)[rot])
    assert torch.allclose(scaled[~rot], img[~rot] / img[rot].mean(), rtol=1e-6)
    assert torch.allclose(scaled[~rot] * printed[~rot], torch.ones(15, dtype=torch.float64), rtol=1e-12)
    with pytest.raises(ValueError, match="n_ij rule must be one of"):
        losses.second_order_norms(ds.train.target_d2, ds.train.d2, "other")
    with pytest.raises(ValueError, match="n_ij_rule must be one of"):
        TrainConfig(n_ij_rule="inverse")
    assert TrainConfig(n_ij_rule="scaled").key() == TrainConfig().key()
