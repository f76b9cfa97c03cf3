"""Random image directions: normalisation, reproducibility, and the frequency content they promise."""
import pytest
import torch

from cubelib import directions


def high_frequency_share(D):
    """Fraction of spectral energy above a quarter of the Nyquist frequency."""
    P = torch.fft.fft2(D).abs() ** 2
    f = torch.fft.fftfreq(41, dtype=torch.float64).abs()
    high = (f[:, None] > 0.125) | (f[None, :] > 0.125)
    return (P[:, high].sum(1) / P.flatten(1).sum(1)).mean().item()


def test_gaussian_matrix():
    G = directions.gaussian_matrix(3)
    assert G.shape == (7, 7) and abs(G.sum().item() - 1) < 1e-15
    assert torch.allclose(G, G.T) and torch.allclose(G, G.flip(0))
    assert G[3, 3] == G.max()
    with pytest.raises(ValueError, match="non-negative integer"):
        directions.gaussian_matrix(-1)


def test_directions_are_unit_and_reproducible():
    for make in (directions.low, directions.mid, directions.high):
        a = make(5, torch.Generator().manual_seed(1))
        b = make(5, torch.Generator().manual_seed(1))
        c = make(5, torch.Generator().manual_seed(2))
        assert a.shape == (5, 41, 41) and torch.equal(a, b) and not torch.equal(a, c)
        assert torch.allclose(a.flatten(1).norm(dim=1), torch.ones(5, dtype=torch.float64))


def test_smoothing_removes_high_frequencies_in_order():
    g = torch.Generator().manual_seed(0)
    shares = [high_frequency_share(directions.smooth(64, r, g)) for r in (0, 1, 2, 8)]
    assert shares[0] > 0.7  # white noise: ~77 % of the band by area
    assert all(a > b for a, b in zip(shares, shares[1:]))
    low, mid, high = (high_frequency_share(f(64, g)) for f in (directions.low, directions.mid, directions.high))
    assert low < mid < high


def test_independent_draws_are_nearly_orthogonal():
    D = directions.mid(200, torch.Generator().manual_seed(3)).flatten(1)
    cos = D @ D.T - torch.eye(200, dtype=torch.float64)
    assert cos.abs().mean() < 0.1


def test_separable_smoothing_equals_the_2d_convolution():
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(9)
    U = directions.smooth(3, 4, g)
    g = torch.Generator().manual_seed(9)
    noise = torch.randn(3, 1, 49, 49, generator=g, dtype=torch.float64)
    ref = F.conv2d(noise, directions.gaussian_matrix(4)[None, None])[:, 0]
    ref = ref / ref.flatten(1).norm(dim=1)[:, None, None]
    assert torch.allclose(U, ref, atol=1e-14)
    G = directions.gaussian_matrix(4)
    assert torch.allclose(G, torch.outer(G.sum(0), G.sum(1)), atol=1e-16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_draw_the_same_bits_as_one_draw(dtype):
    """smooth() draws in blocks of BLOCK images; the result must be the one-draw formula's,
    bit for bit, also when n is not a multiple of the block (the last block's randn then ends
    off a group of 16 numbers and recomputes its tail, as one draw does)."""
    for n, r in ((2 * directions.BLOCK + 5, 3), (directions.BLOCK, 0), (7, 1)):
        g = torch.Generator().manual_seed(11)
        U = directions.smooth(n, r, g, dtype=dtype)
        after = torch.rand(3, generator=g)  # the stream continues where one draw leaves it
        g = torch.Generator().manual_seed(11)
        noise = torch.randn(n, 41 + 2 * r, 41 + 2 * r, generator=g, dtype=dtype)
        w = directions.gaussian_matrix(r, dtype).sum(0)
        T = torch.stack([torch.cat([torch.zeros(i, dtype=dtype), w, torch.zeros(40 - i, dtype=dtype)]) for i in range(41)])
        ref = T @ noise @ T.T
        ref = ref / ref.flatten(1).norm(dim=1)[:, None, None]
        assert torch.equal(U, ref), (n, r)
        assert torch.equal(after, torch.rand(3, generator=g))


def test_radial_spectrum_adds_up_and_separates_the_families():
    g = torch.Generator().manual_seed(3)
    for family in (directions.low, directions.mid, directions.high):
        x = family(64, g)
        k, p = directions.radial_spectrum(x)
        assert len(k) == 21 and torch.allclose(p.sum(), (x**2).sum((-1, -2)).mean(), rtol=1e-12)  # Parseval
    _, white = directions.radial_spectrum(directions.high(256, g))
    # white noise: power per ring proportional to the number of frequencies on it
    ring = torch.sqrt(torch.fft.fftfreq(41, 1 / 41)[:, None] ** 2 + torch.fft.fftfreq(41, 1 / 41)[None] ** 2)
    count = torch.bincount(ring.round().long().clamp(max=20).flatten(), minlength=21).double()
    assert torch.allclose(white / count, torch.full_like(white, 1 / 1681), rtol=0.25)
    _, low = directions.radial_spectrum(directions.low(256, g))
    _, mid = directions.radial_spectrum(directions.mid(256, g))
    # U(15) and U(8) carry 2 / 2.2 of D_low's energy, all below a few cycles; 0.4 U(2) and
    # 0.2 U(1) the rest, spread wide, as D_mid is
    assert low[:5].sum() > 0.8 and low[10:].sum() < 0.1 < mid[10:].sum()
    assert low.argmax() < 3 < mid.argmax()


def test_pair_cosines_measure_the_effective_dimension():
    """The mean square scalar product of independent isotropic directions in a k-dimensional
    subspace is 1/k (so the chapter's "effective dimension" 1 / mean square is k), and their
    mean is 0; a shared component shows up in the mean."""
    from cubelib.studies.robustness_figures import _pair_cosines
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(1681, 1681, generator=g, dtype=torch.float64))[0]
    for k in (10, 100, 1681):
        x = torch.randn(600, k, generator=g, dtype=torch.float64) @ basis[:, :k].T
        cos = _pair_cosines(x)
        assert cos.numel() == 600 * 599
        assert 1 / cos.square().mean().item() == pytest.approx(k, rel=0.05)
        assert abs(cos.mean().item()) < 5 / (k ** 0.5 * 600)  # its sd: sqrt(2 / k) / 600
    shared = torch.randn(600, 1681, generator=g, dtype=torch.float64) + 3 * basis[:, 0]  # |common| ~ |noise| / 13.7
    assert _pair_cosines(shared).mean().item() == pytest.approx(9 / (9 + 1681), rel=0.2)
