"""Data sets: determinism, cache reuse, and refusal of stale or corrupt files."""
import warnings
from pathlib import Path

import pytest
import torch

from cubelib import data, render, sampling

CFG = data.DatasetConfig(n_train=12, n_test=5, order=2, storage="float64")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, data.load(CFG, cache_dir=cache, progress=False)


def test_splits_follow_the_r_sequence_and_the_renderer(built):
    _, ds = built
    assert len(ds.train) == 12 and len(ds.test) == 5
    assert torch.equal(ds.test.vertices, sampling.sample_vertices(5, start=12))
    r = render.render(ds.test.vertices[:2], order=2)
    assert torch.equal(ds.test.image[:2], r.image) and torch.equal(ds.test.d2[:2], r.d2)
    assert ds.train.target.shape == (12, 9) and ds.train.target_d1.shape == (12, 6, 9)
    assert torch.equal(ds.train.target[:, :3], ds.train.vertices[:, 0])
    # normalisation constants as defined in eqs. (7), (8) and section 4.3
    assert abs(ds.norms.n - ds.train.target.norm(dim=1).mean().item()) < 1e-15
    assert torch.allclose(ds.norms.n_i, ds.train.target_d1.norm(dim=2).mean(0))
    assert torch.allclose(ds.norms.D_i, ds.train.target.std(0))


def test_cache_is_reused(built):
    cache, ds = built
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = data.load(CFG, cache_dir=cache, progress=False)
    assert again.path == ds.path
    assert torch.equal(again.train.d1, ds.train.d1)


def test_truncated_cache_is_rebuilt(built, tmp_path):
    _, ds = built
    path = tmp_path / ds.path.name
    path.write_bytes(ds.path.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="unreadable"):
        again = data.load(CFG, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.train.image, ds.train.image)


def test_tampered_or_stale_cache_is_rebuilt(built, tmp_path):
    _, ds = built
    payload = torch.load(ds.path, weights_only=True)
    payload["tensors"]["train.image"][0, 20, 20] += 1e-3
    path = tmp_path / ds.path.name
    torch.save(payload, path)
    with pytest.warns(UserWarning, match="checksum"):
        again = data.load(CFG, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.train.image, ds.train.image)
    payload = torch.load(path, weights_only=True)
    payload["meta"]["render"] = -1
    torch.save(payload, path)
    with pytest.warns(UserWarning, match="stale"):
        data.load(CFG, cache_dir=tmp_path, progress=False)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="unknown preset 'big'"):
        data.dataset_config("big")
    with pytest.raises(ValueError, match="n_train must be an integer >= 1"):
        data.DatasetConfig(n_train=0, n_test=1)
    with pytest.raises(ValueError, match="order must be 0, 1 or 2"):
        data.DatasetConfig(n_train=1, n_test=1, order=3)
    with pytest.raises(ValueError, match="storage must be one of"):
        data.DatasetConfig(n_train=1, n_test=1, storage="int8")
    assert data.dataset_config("paper").n_train == 97020
    assert data.dataset_config("quick", order=2).order == 2


def _second_difference(f, i, j, h):
    """Central second difference of f(nu) at nu = 0 along e_i, e_j (mixed for i != j)."""
    def at(a, b):
        nu = torch.zeros(6, dtype=torch.float64)
        nu[i] += a
        nu[j] += b
        return f(nu)
    if i == j:
        return (at(h, 0) - 2 * at(0, 0) + at(-h, 0)) / h**2
    return (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h)


def test_stored_second_derivatives_are_those_of_one_curve(built):
    """What E2 trains against: the stored d2I and d2C of a sample are the second derivatives
    of the one curve nu -> (I(T(nu)C), C(T(nu)C)) through it, for all 21 pairs (Richardson-
    extrapolated second differences of freshly rendered images and of the targets)."""
    from cubelib import geometry
    _, ds = built
    verts = ds.train.vertices[:3]
    image = lambda nu: render.render(geometry.transform(verts, nu)).image
    target = lambda nu: geometry.target(geometry.transform(verts, nu))
    for k, (i, j) in enumerate(geometry.PAIRS):
        h = 2e-3
        ref_img = (4 * _second_difference(image, i, j, h / 2) - _second_difference(image, i, j, h)) / 3
        ref_tgt = (4 * _second_difference(target, i, j, h / 2) - _second_difference(target, i, j, h)) / 3
        rel_img = ((ds.train.d2[:3, k] - ref_img).norm() / ref_img.norm()).item()
        err_tgt = (ds.train.target_d2[:3, k] - ref_tgt).abs().max().item()
        assert rel_img < 1e-5, (i, j, rel_img)
        assert err_tgt < 1e-7 * max(1.0, ref_tgt.abs().max().item()), (i, j, err_tgt)


def test_cache_is_mapped_and_private_on_write(built):
    """A cached data set is the file's pages (shared by the processes that train on it), and
    writing into a loaded tensor changes neither the file nor the next load."""
    cache, ds = built
    again = data.load(CFG, cache_dir=cache, progress=False)
    assert str(ds.path) in Path("/proc/self/maps").read_text()  # mapped, not read into private memory
    before = again.train.image[0].clone()
    again.train.image[0] += 1.0
    third = data.load(CFG, cache_dir=cache, progress=False)  # the checksum would refuse a changed file
    assert torch.equal(third.train.image[0], before)
