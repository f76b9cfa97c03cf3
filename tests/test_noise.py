"""Noisy images and the oracle's answer for them (eq. 52) against the nonlinear oracle."""
import math

import pytest
import torch

from cubelib import data, noise, render


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    cfg = data.DatasetConfig(n_train=8, n_test=6, order=2, storage="float64")
    return data.load(cfg, cache_dir=tmp_path_factory.mktemp("c"), progress=False).test


def test_no_noise_changes_nothing(split):
    no = noise.noisy_oracle(split, 0.0, 4, nonlinear=False)
    assert torch.equal(no.target_eq52, no.target_clean) and torch.equal(no.target_first, no.target_clean)
    assert torch.allclose(no.grad_O_corrected, no.grad_O_clean, rtol=0, atol=1e-6 * no.grad_O_clean.abs().max())


def test_eq_52_is_second_order_accurate_against_the_nonlinear_oracle(split):
    """Halving sigma divides the first-order answer's error by ~4 and eq. (52)'s by ~8."""
    D = torch.ones(9, dtype=torch.float64)
    gaps = {}
    for s in (4e-3, 2e-3):
        no = noise.noisy_oracle(split, s, 4, seed=3)
        assert bool(no.converged.all())
        gaps[s] = (noise.oracle_gap(no.target_first, no.target_nonlinear, D),
                   noise.oracle_gap(no.target_eq52, no.target_nonlinear, D),
                   noise.oracle_gap(no.target_eq52, no.target_clean, D))
    first = math.log2(gaps[4e-3][0] / gaps[2e-3][0])
    second = math.log2(gaps[4e-3][1] / gaps[2e-3][1])
    assert 1.8 < first < 2.2 and 2.7 < second < 3.3, (first, second)
    assert 0.9 < gaps[4e-3][2] / gaps[2e-3][2] / 2 < 1.1  # the correction itself is linear in sigma


def test_standard_noise_is_shared_across_sigmas(split):
    a = noise.noisy_oracle(split, 0.1, 3, seed=7, nonlinear=False)
    b = noise.noisy_oracle(split, 0.2, 3, seed=7, nonlinear=False)
    clean = render.render(split.vertices[:3].double(), order=0).image
    assert torch.allclose(2 * (a.image - clean), b.image - clean)


def test_the_clean_image_is_its_cube_s_exactly(tmp_path):
    """At sigma = 0 the nonlinear oracle is already at its answer: the image is rendered in
    float64 from the cube, not read from the stored set (float32, rounded by ~3e-8), so every
    solve converges where it starts."""
    cfg = data.DatasetConfig(n_train=4, n_test=32, order=2, storage="float32")
    test = data.load(cfg, cache_dir=tmp_path, progress=False).test
    exact = render.render(test.vertices.double(), order=0).image
    assert (test.image.double() - exact).abs().max() > 0  # the stored images are rounded
    no = noise.noisy_oracle(test, 0.0, 32)
    assert torch.equal(no.image, exact)
    assert bool(no.converged.all()) and torch.allclose(no.target_nonlinear, no.target_clean, rtol=0, atol=1e-12)


def test_bad_input(split):
    with pytest.raises(ValueError, match="sigma must be in"):
        noise.noisy_oracle(split, -0.1, 2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        noise.noisy_oracle(split, 0.1, 0)


def test_sweep_settings_are_validated():
    """The sweep of Figs. 9-10 takes the preset's sigmas or an explicit list, refused with the
    parameter's name when out of range."""
    from cubelib import analyses
    with pytest.raises(ValueError, match="unknown preset"):
        analyses.noise_sweep("huge", networks={})
    with pytest.raises(ValueError, match="noise_sigmas must be"):
        analyses.noise_sweep("smoke", networks={}, sigmas=(0.1, 2.0))
    with pytest.raises(ValueError, match="noise_sigmas must be"):
        analyses.noise_sweep("smoke", networks={}, sigmas=())


def test_second_share_matches_the_sweep_and_scales_with_contrast(split):
    """The share analysis of the second-order chapter: the sweep's measure on the same noise;
    images scaled by k divide the second-order term / the first by k (eqs. 23, 51); a direction in the tangent space has no
    residual part."""
    from cubelib.studies.second_order import _second_share
    n, sigma = 4, 0.1
    D = torch.tensor([0.3, 0.2, 0.1] * 3, dtype=torch.float64)
    no = noise.noisy_oracle(split, sigma, n, seed=5, nonlinear=False)
    N = sigma * noise.standard_noise(n, 5).reshape(n, 1, -1)
    V, d1, d2 = split.vertices[:n], split.d1[:n], split.d2[:n]
    share = _second_share(V, d1, d2, N, D)
    sweep = noise.oracle_gap(no.target_eq52, no.target_first, D) / noise.oracle_gap(no.target_eq52, no.target_clean, D)
    assert share["share"] == pytest.approx(sweep, rel=1e-9)
    assert 0 < share["residual"] and all(0 < x < 1 for x in share["per_output"])
    doubled = _second_share(V, 2 * d1, 2 * d2, N, D)
    assert doubled["ratio"] == pytest.approx(share["ratio"] / 2, rel=1e-9)
    tangent = torch.randn(n, 1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    along = tangent @ d1.reshape(n, 6, -1).double()  # in the tangent space
    assert _second_share(V, d1, d2, along, D)["residual"] < 1e-12
    assert _second_share(V, d1, d2, along, D)["share"] > 1e-6  # the curvature term remains
