"""Trainer: determinism, exact resume, terms against independent references, bad recipes."""
import pytest
import torch

from cubelib import data, evaluate, jets, train, trainset
from cubelib import terms as T
from cubelib.recipes import Phase, Recipe

E0, E1, E2 = T.E0(), T.E1(), T.E2()


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    cfg = data.DatasetConfig(n_train=48, n_test=16, order=2)
    return data.load(cfg, cache_dir=tmp_path_factory.mktemp("c"), progress=False)


def small(terms=(E0, E1), epochs=(3, 2)):
    return Recipe(hidden=(16, 16, 8), phases=(Phase(epochs[0], 1e-3, terms), Phase(epochs[1], 1e-4, terms)),
                  batches=4, eval_every=1)


def norms_of(ds, rule=None, device="cpu"):
    n_ij = None if rule is None else T.second_order_norms(ds.train.target_d2, ds.train.d2, rule).float()
    return T.Norms(n=ds.norms.n, n_i=ds.norms.n_i.float(), D=ds.norms.D_i.float(), n_ij=n_ij)


NO_DRAWS = T.Epoch(dirs={}, d2O={})


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
    other = train.train(small(terms=(E0,)), ds, checkpoint=ck, progress=False)
    assert other.resumed_from == 0


def test_e0_and_e1_match_direct_formulas(ds):
    m = jets.MLP((8, 8), generator=torch.Generator().manual_seed(0))
    rows = trainset.TrainSet(ds.train, 2, "cpu")
    norms = norms_of(ds, "scaled")
    idx = torch.arange(10)
    t = T.evaluate(m, rows, idx, (E0, E1, E2), norms, NO_DRAWS)
    y = m(rows.x[idx])
    assert torch.allclose(t["E0"], ((y - rows.target[idx]) ** 2).sum(1).mean() / norms.n**2)
    # E1 by finite differences of the network along the image derivative: N(I + h dI) - N(I - h dI)
    h = 1e-2
    d1 = rows.rows[:, 1:7]
    y1 = (m(rows.x[idx, None] + h * d1[idx]) - m(rows.x[idx, None] - h * d1[idx])) / (2 * h)
    e1 = (((y1 - rows.target_d1[idx]) ** 2).sum(-1).mean(0) / norms.n_i**2).sum()
    assert torch.allclose(t["E1"], e1, rtol=1e-3)


def test_e2_matches_nested_torch_func_in_float64(ds):
    """E2 (§5.2) on real data: d2N/dnu_i dnu_j = H_N[dI_i, dI_j] + J_N d2I_ij, the network's
    second derivative along the pose curve, by nested torch.func jvps in float64."""
    from torch.func import jvp
    from cubelib.geometry import PAIRS
    m = jets.MLP((8, 8), generator=torch.Generator().manual_seed(2)).double()
    rows = trainset.TrainSet(ds.train, 2, "cpu", dtype=torch.float64)
    norms = norms_of(ds, "scaled")
    norms.n_ij = norms.n_ij.double()
    idx = torch.arange(5)
    t = T.evaluate(m, rows, idx, (E0, E1, E2), norms, NO_DRAWS)
    x, d1, d2 = rows.x[idx], rows.rows[idx, 1:7], rows.rows[idx, 7:28]
    per = torch.zeros(21, dtype=torch.float64)
    for k, (i, j) in enumerate(PAIRS):
        def along_i(z):
            return jvp(m, (z,), (d1[:, i],))[1]
        hess = jvp(along_i, (x,), (d1[:, j],))[1]  # H_N[dI_i, dI_j]
        d2N = hess + jvp(m, (x,), (d2[:, k],))[1]  # + J_N d2I_ij
        per[k] = ((d2N - rows.target_d2[idx, k]) ** 2).sum(-1).mean()
    assert torch.allclose(t["E2"], (per / norms.n_ij**2).sum(), rtol=1e-10)


def test_e2_sees_the_second_derivative_of_the_network_along_the_manifold(ds):
    """The targets d2C and the network's d2N along the pose curve, both against central second
    differences: images and cubes of poses T(nu)C rendered anew at nu = +-h e_i (pair (i, i))."""
    from cubelib import geometry, render
    m = jets.MLP((8, 8), generator=torch.Generator().manual_seed(3)).double()
    V = ds.train.vertices[:3]
    img = lambda v: render.render(v, order=0).image.reshape(3, -1)

    def second_difference(f, i, h):  # Richardson-extrapolated central second difference at nu = 0
        def d(h):
            nu = torch.zeros(3, 6, dtype=torch.float64)
            nu[:, i] = h
            return (f(geometry.transform(V, nu)) - 2 * f(V) + f(geometry.transform(V, -nu))) / h**2
        return (4 * d(h / 2) - d(h)) / 3

    r = render.render(V, order=2)
    for i in (0, 4):  # a rotation and a shift
        k = geometry.PAIRS.index((i, i))
        fd = second_difference(lambda v: m(img(v)), i, 2e-3)
        _, _, y2 = m.jet_rows(torch.cat([r.image.reshape(3, 1, -1), r.d1.reshape(3, 6, -1),
                                         r.d2[:, k:k + 1].reshape(3, 1, -1)], 1), 6, [(i, i)])
        assert torch.allclose(y2[:, 0], fd, rtol=1e-5, atol=1e-7)
        tgt = second_difference(geometry.target, i, 2e-3)
        assert torch.allclose(ds.train.target_d2[:3, k], tgt, rtol=1e-6, atol=1e-9)


def test_error_e_is_eq_8(ds):
    m = jets.MLP((8,), generator=torch.Generator().manual_seed(0))
    x = ds.test.image.reshape(16, -1).float()
    e = evaluate.error_e(m, x, ds.test.target.float(), ds.norms.D_i)
    direct = 100 * ((m(x).double() - ds.test.target) ** 2).mean(0).sqrt() / ds.norms.D_i
    assert torch.allclose(e, direct, rtol=1e-5)


def test_bad_recipes(ds):
    with pytest.raises(ValueError, match="exactly one E0"):
        Phase(1, 1e-3, (E1,))
    with pytest.raises(ValueError, match="exactly one E0"):
        Phase(1, 1e-3, (E0, E1, E1))
    with pytest.raises(ValueError, match="Phase.lr"):
        Phase(1, 2.0)
    with pytest.raises(ValueError, match="tuple of cubelib.terms"):
        Phase(1, 1e-3, ("E0",))
    with pytest.raises(ValueError, match="batches"):
        Recipe(batches=0)
    with pytest.raises(ValueError, match="same n_ij rule"):
        Recipe(phases=(Phase(1, 1e-3, (E0, T.E2("printed"))), Phase(1, 1e-3, (E0, E2))))
    with pytest.raises(ValueError, match="E0.noise"):
        T.E0(noise=-0.1)
    with pytest.raises(ValueError, match="Jacobian.weight"):
        T.Jacobian("low", -1.0)
    with pytest.raises(ValueError, match="Robust.family"):
        T.Robust("top")
    with pytest.raises(ValueError, match="E2.n_ij_rule"):
        T.E2("inverse")
    with pytest.raises(ValueError, match="E2.weight must be a number >= 0"):
        T.E2(weight=-0.01)
    with pytest.raises(ValueError, match="E2.weight must be > 0"):
        T.E2(weight=0)
    with pytest.raises(ValueError, match="Recipe.precision must be one of float32, bfloat16"):
        Recipe(precision="float16")
    low = data.DatasetConfig(n_train=4, n_test=2, order=0)
    with pytest.raises(ValueError, match="holds only order 0"):
        train.train(small(), data.build(low, progress=False), progress=False)


def test_recipe_keys_cover_every_setting_and_round_trip():
    base = small()
    variants = [small(terms=(E0,)), small(epochs=(3, 3)), small(terms=(T.E0(noise=0.05), E1)),
                Recipe(hidden=(16, 16, 8), phases=base.phases, batches=4, eval_every=2),
                Recipe(hidden=(16, 16, 8), phases=base.phases, batches=4, eval_every=1, seed=1),
                small(terms=(E0, T.Jacobian("low", 2.0))), small(terms=(E0, T.Jacobian("low", 1.0))),
                Recipe(hidden=(16, 16, 8), phases=base.phases, batches=4, eval_every=1, precision="bfloat16"),
                small(terms=(E0, E1, E2)), small(terms=(E0, E1, T.E2(weight=0.01)))]
    keys = {r.key() for r in [base, *variants]}
    assert len(keys) == len(variants) + 1
    for r in [base, *variants]:
        assert Recipe.from_description(r.describe()) == r


def test_robust_and_jacobian_terms_match_direct_formulas(ds):
    from cubelib import directions, oracle, render
    m = jets.MLP((8, 8), generator=torch.Generator().manual_seed(0)).double()
    dd = trainset.TrainSet(ds.train, 1, "cpu", dtype=torch.float64, oracle_gradients=True)
    idx = torch.arange(6)
    D = directions.low(len(ds.train), torch.Generator().manual_seed(4)).reshape(len(ds.train), -1)
    norms = norms_of(ds)
    n_i, c = T.robust_norms(dd.grad_O, D)
    norms.robust = {"low": (n_i.double(), c)}
    t = T.evaluate(m, dd, idx, (E0, T.Robust("low"), T.Jacobian("low", 0.5)), norms, T.Epoch(dirs={"low": D}, d2O={}))
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
    # taken a few images at a time (so a paper-size set never exists in float64): the same bits
    n_small, c_small = T.robust_norms(dd.grad_O, D, chunk=5)
    assert len(D) > 5 and torch.equal(n_small, n_i) and c_small == c


def robust_recipe():
    noisy = T.E0(noise=0.05)
    return Recipe(hidden=(16, 8), phases=(Phase(2, 1e-3, (noisy, E1, T.Robust("low"), T.Robust("mid"))),
                                          Phase(1, 1e-4, (noisy, T.Jacobian("high")))), batches=4, eval_every=1)


def test_robust_training_resumes_exactly_with_its_random_directions(ds, tmp_path):
    full = train.train(robust_recipe(), ds, progress=False)
    assert all(v is not None for v in full.curves["R_low"][:2]) and full.curves["J_high"][2] is not None
    ck = tmp_path / "r.pt"
    train.train(robust_recipe(), ds, checkpoint=ck, progress=False, until_epoch=1)
    rest = train.train(robust_recipe(), ds, checkpoint=ck, progress=False)
    for p, q in zip(full.model.parameters(), rest.model.parameters()):
        assert torch.equal(p, q)


def test_drawing_the_next_epoch_in_a_worker_thread_changes_no_bit(ds, tmp_path):
    """Directions, noise and projections drawn ahead in a worker thread (the default) against
    drawn in the training thread when needed: the same weights, and a checkpoint after epoch 1
    keeps the direction stream as it was before epoch 2's draw."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    ahead = train.train(robust_recipe(), ds, checkpoint=a, progress=False, until_epoch=1)
    serial = train.train(robust_recipe(), ds, checkpoint=b, progress=False, until_epoch=1, prefetch=False)
    A, B = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert torch.equal(A["dir_generator"], B["dir_generator"]) and torch.equal(A["generator"], B["generator"])
    for p, q in zip(ahead.model.parameters(), serial.model.parameters()):
        assert torch.equal(p, q)
    full = [train.train(robust_recipe(), ds, progress=False, prefetch=f).model for f in (True, False)]
    for p, q in zip(full[0].parameters(), full[1].parameters()):
        assert torch.equal(p, q)


def test_second_order_robust_term_matches_torch_func_and_eq_51(ds):
    """R2_low (§5.4): the network's d2N/dD2 against nested torch.func jvps in float64, the
    oracle's d2O/dD2 of the training path (float32 tangent data) against oracle.expand on
    freshly rendered float64 images."""
    from torch.func import jvp
    from cubelib import directions, oracle, render
    m = jets.MLP((8, 8), generator=torch.Generator().manual_seed(1)).double()
    dd = trainset.TrainSet(ds.train, 2, "cpu", dtype=torch.float64, oracle_gradients=True, tangent=True)
    n = len(ds.train)
    D = directions.mid(n, torch.Generator().manual_seed(5), dtype=torch.float64).reshape(n, -1)
    d2O = dd.oracle_d2(D)
    V = ds.train.vertices[:6]
    ref = oracle.expand(V, render.render(V, order=2), D[:6].reshape(6, 1, 41, 41), order=2).d2O[:, 0]
    # the data set stores images in float32 and H is a finite difference: agreement to ~1e-5
    assert torch.allclose(d2O[:6], ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    norms = norms_of(ds)
    norms.robust = {"mid": T.robust_norms(dd.grad_O, D)}
    n_i, c = T.spread_norms(d2O)
    norms.robust2 = {"mid": (n_i.double(), c)}
    idx = torch.arange(6)
    draws = T.Epoch(dirs={"mid": D}, d2O={"mid": d2O})
    t = T.evaluate(m, dd, idx, (E0, E1, T.Robust("mid"), T.Robust("mid", 2)), norms, draws)

    def dN(x):  # first derivative along D
        return jvp(m, (x,), (D[idx],))[1]

    d2N = jvp(dN, (dd.x[idx],), (D[idx],))[1]
    direct = (((d2N - d2O[idx]) / n_i.double()) ** 2).sum(1).mean() / c**2
    assert torch.allclose(t["R2_mid"], direct, rtol=1e-10)
    # the first-order term is unchanged by the extra rows the second-order pair adds
    t1 = T.evaluate(m, dd, idx, (E0, E1, T.Robust("mid")), norms, draws)
    assert torch.allclose(t["R_mid"], t1["R_mid"], rtol=1e-12) and torch.allclose(t["E1"], t1["E1"], rtol=1e-12)


def test_second_order_training_with_e2_and_r2_resumes_exactly(ds, tmp_path):
    cfg = Recipe(hidden=(16, 8), phases=(Phase(2, 1e-3, (E0, E1, T.Robust("low"), T.Robust("low", 2))),
                                         Phase(1, 1e-4, (E0, E1, E2))), batches=4, eval_every=1)
    assert cfg.order == 2 and cfg.second_families == ["low"]
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
    scaled = T.second_order_norms(ds.train.target_d2, ds.train.d2, "scaled")
    printed = T.second_order_norms(ds.train.target_d2, ds.train.d2, "printed")
    rot = torch.tensor([j < 3 for _, j in PAIRS])
    img = ds.train.d2.flatten(2).double().norm(dim=-1).mean(0)
    assert torch.allclose(scaled[rot], ds.train.target_d2.norm(dim=-1).mean(0)[rot])
    assert torch.allclose(scaled[~rot], img[~rot] / img[rot].mean(), rtol=1e-6)
    assert torch.allclose(scaled[~rot] * printed[~rot], torch.ones(15, dtype=torch.float64), rtol=1e-12)
    with pytest.raises(ValueError, match="n_ij rule must be one of"):
        T.second_order_norms(ds.train.target_d2, ds.train.d2, "other")


def test_n_ij_corners_rule_is_the_24_face_corners(ds):
    """The author's reading: the rotation pairs' n_ij over the 24 face corners (FACES lists
    each face's four vertices), each corner's d2 by central second differences of
    geometry.transform; the other 15 pairs as in the "scaled" rule."""
    from cubelib import geometry
    from cubelib.geometry import PAIRS
    corners_rule = T.second_order_norms(ds.train.target_d2, ds.train.d2, "corners", ds.train.vertices)
    scaled = T.second_order_norms(ds.train.target_d2, ds.train.d2, "scaled")
    rot = torch.tensor([j < 3 for _, j in PAIRS])
    v, h = ds.train.vertices.double(), 1e-4
    faces = geometry.FACES.flatten()  # 24 corner indices

    def corners(nu):
        return geometry.transform(v, nu)[:, faces].flatten(1)  # [N, 72]

    reference = torch.zeros(21, dtype=torch.float64)
    for k, (i, j) in enumerate(PAIRS):
        if j >= 3:
            continue
        e_i, e_j = torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
        e_i[i], e_j[j] = h, h
        d2 = (corners(e_i + e_j) - corners(e_i - e_j) - corners(e_j - e_i) + corners(-e_i - e_j)) / (4 * h * h)
        reference[k] = d2.norm(dim=-1).mean()
    assert torch.allclose(corners_rule[rot], reference[rot], rtol=1e-6)
    assert corners_rule[rot].min() > 2 * scaled[rot].max() / 3  # 24 corners against 3 vertices
    assert torch.equal(corners_rule[~rot], scaled[~rot])
    from cubelib.studies.second_order import rotation_norms  # the chapter's numbers: the same norms
    ours, corners = rotation_norms(ds.train.vertices)
    assert torch.allclose(ours, scaled[rot], rtol=1e-12) and torch.allclose(corners, corners_rule[rot], rtol=1e-12)
    with pytest.raises(ValueError, match="needs the training images' vertices"):
        T.second_order_norms(ds.train.target_d2, ds.train.d2, "corners")


def test_float32_recipes_keep_their_keys():
    """precision joined the recipe later: a float32 recipe describes (and keys) as before."""
    d = small().describe()
    assert "precision" not in d and Recipe.from_description(d).precision == "float32"
    assert "precision" in Recipe(precision="bfloat16").describe()


def test_e2_keeps_its_key_and_its_weight_scales_the_term_only(ds):
    """E2's weight joined later: the paper's E2 (weight 1) describes as before, and a weight w
    multiplies E2 and nothing else (the same as n_ij / sqrt(w))."""
    assert "weight" not in small(terms=(E0, E1, E2)).describe()["phases"][0]["terms"][2]
    m = jets.MLP((8, 8), generator=torch.Generator().manual_seed(3))
    rows = trainset.TrainSet(ds.train, 2, "cpu")
    norms = norms_of(ds, "scaled")
    idx = torch.arange(7)
    one = T.evaluate(m, rows, idx, (E0, E1, E2), norms, NO_DRAWS)
    w = T.evaluate(m, rows, idx, (E0, E1, T.E2(weight=0.01)), norms, NO_DRAWS)
    assert torch.equal(w["E0"], one["E0"]) and torch.equal(w["E1"], one["E1"])
    assert torch.allclose(w["E2"], 0.01 * one["E2"], rtol=1e-6)
    wider = T.Norms(n=norms.n, n_i=norms.n_i, D=norms.D, n_ij=norms.n_ij * 10)
    assert torch.allclose(w["E2"], T.evaluate(m, rows, idx, (E0, E1, E2), wider, NO_DRAWS)["E2"], rtol=1e-5)


def test_bfloat16_rounds_the_matmul_operands_only(ds):
    """Under matmul_precision(bfloat16) a hidden layer is bf16(h) @ bf16(W).T accumulated in
    float32 and rounded to bfloat16: within half its ulp (2^-8 relative) of a float64 product of the rounded operands;
    the output layer stays float32; the network's output is within bfloat16's rounding of the
    float32 pass."""
    m = jets.MLP((16, 8), generator=torch.Generator().manual_seed(0))
    x = ds.train.image[:8].reshape(8, -1).float()
    w = m.weights[0]
    with jets.matmul_precision(m, torch.bfloat16):
        z = m._mm(x, w)
        y_bf = m(x)
        out = m._mm(torch.ones(2, 16), m.weights[1], last=True)
    ref = x.bfloat16().double() @ w.bfloat16().double().T
    assert z.dtype == torch.float32 and torch.allclose(z.double(), ref, rtol=2 ** -8, atol=1e-6)
    assert not torch.allclose(z.double(), x.double() @ w.double().T, rtol=1e-4)  # really rounded
    assert torch.equal(out, torch.ones(2, 16) @ m.weights[1].T)
    assert m.matmul_dtype is None  # restored
    y = m(x)
    rel = ((y_bf - y).norm() / y.norm()).item()
    assert 1e-5 < rel < 2 ** -7


def test_bfloat16_training_trains_and_evaluates_in_float32(ds):
    rec = Recipe(hidden=(16, 16, 8), phases=small().phases, batches=4, eval_every=1, precision="bfloat16")
    a, b = train.train(rec, ds, progress=False), train.train(rec, ds, progress=False)
    f = train.train(small(), ds, progress=False)
    assert a.model.matmul_dtype is None and all(p.dtype == torch.float32 for p in a.model.parameters())
    for p, q, r in zip(a.model.parameters(), b.model.parameters(), f.model.parameters()):
        assert torch.equal(p, q)  # still deterministic
        assert not torch.equal(p, r)  # and really another computation than float32
    assert abs(a.curves["e_test"][-1] / f.curves["e_test"][-1] - 1) < 0.05


def test_the_bfloat16_speed_note_follows_the_measured_ratio_and_the_cpu_flags():
    from cubelib.studies import precision
    amx = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n"
    epyc = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"
    assert precision.bf16_units(amx) == ["amx_bf16"] and precision.bf16_units(epyc) == []
    assert precision.bf16_units("processor\t: 0\n") is None  # no flags line: unknown
    assert precision.speed_note(0.5, []) == ""  # faster: nothing to explain
    assert "no bfloat16 matrix instructions" in precision.speed_note(7.3, [])
    assert "although this CPU has AMX-BF16 and AVX-512 BF16:" in precision.speed_note(1.2, ["amx_bf16", "avx512_bf16"])
    assert precision.speed_note(1.2, None) == "Here bfloat16 is slower."
    units = precision.bf16_units()  # this machine's own /proc/cpuinfo, where there is one
    assert units is None or set(units) <= {"amx_bf16", "avx512_bf16"}


def test_a_compiled_recipe_trains_like_the_eager_one_and_resumes_exactly(ds, tmp_path):
    """Recipe.compiled: the extended pass under torch.compile.  Its own key (eager keys as
    before); the same training to float32 rounding (other kernels, other sums); and, being
    deterministic code, the same bits after an interrupted run resumes."""
    import dataclasses
    eager = small((E0, E1, T.E2()), epochs=(2, 1))
    fused = dataclasses.replace(eager, compiled=True)
    assert fused.key() != eager.key() and "compiled" not in eager.describe()
    assert Recipe.from_description(fused.describe()) == fused
    a = train.train(eager, ds, progress=False)
    b = train.train(fused, ds, progress=False)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)
    ck = tmp_path / "c.pt"
    train.train(fused, ds, checkpoint=ck, progress=False, until_epoch=1)
    rest = train.train(fused, ds, checkpoint=ck, progress=False)
    for p, q in zip(b.model.parameters(), rest.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="compiled"):
        dataclasses.replace(eager, compiled="yes")
