"""The extended forward pass against torch.func (nested jvp) in float64."""
import math

import pytest
import torch
from torch.func import jvp

from cubelib import jets
from cubelib.geometry import PAIRS


@pytest.fixture(scope="module")
def net():
    g = torch.Generator().manual_seed(0)
    return jets.MLP(hidden=(24, 16, 12), inputs=30, outputs=9, generator=g, dtype=torch.float64)


def test_initialisation_ranges():
    g = torch.Generator().manual_seed(1)
    m = jets.MLP(hidden=(256, 256, 256, 128), generator=g)
    assert m.sizes == [1681, 256, 256, 256, 128, 9]
    assert m.n_weights() == 1681 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 128 + 128 + 128 * 9 + 9
    assert m.weights[0].abs().max() <= 10 / math.sqrt(1681) and m.weights[0].abs().max() > 9.9 / math.sqrt(1681)
    assert m.weights[1].abs().max() <= 2 / 16 and m.weights[4].abs().max() <= 2 / math.sqrt(128)
    assert all(b.abs().max() <= 0.1 for b in m.biases)


def test_value_matches_plain_forward(net):
    x = torch.randn(5, 30, dtype=torch.float64)
    y, y1, y2 = net.jet(x)
    assert y1 is None and y2 is None
    assert torch.allclose(y, net(x), atol=1e-14)


def test_first_and_second_order_match_nested_jvp(net):
    torch.manual_seed(3)
    B, K = 4, 6
    x = torch.randn(B, 30, dtype=torch.float64)
    d1 = torch.randn(B, K, 30, dtype=torch.float64)
    d2 = torch.randn(B, len(PAIRS), 30, dtype=torch.float64)
    y, y1, y2 = net.jet(x, d1, d2, PAIRS)
    for b in range(B):
        for a in range(K):
            _, ref = jvp(net, (x[b:b + 1],), (d1[b:b + 1, a],))
            assert torch.allclose(y1[b, a], ref[0], atol=1e-12, rtol=0)
        for k, (i, j) in enumerate(PAIRS):
            inner = lambda z: jvp(net, (z,), (d1[b:b + 1, j],))[1]
            _, hess = jvp(inner, (x[b:b + 1],), (d1[b:b + 1, i],))
            _, lin = jvp(net, (x[b:b + 1],), (d2[b:b + 1, k],))
            assert torch.allclose(y2[b, k], (hess + lin)[0], atol=1e-12, rtol=0)


def test_zero_second_order_input_means_straight_lines(net):
    x = torch.randn(3, 30, dtype=torch.float64)
    d1 = torch.randn(3, 2, 30, dtype=torch.float64)
    _, _, y2 = net.jet(x, d1, None, [(0, 0), (0, 1)])
    # along x + t d1_0 the second derivative is the pure Hessian term
    t = 1e-4
    f = lambda s: net(x + s * d1[:, 0])
    fd = (f(t) - 2 * f(0) + f(-t)) / t**2
    assert torch.allclose(y2[:, 0], fd, atol=1e-5)


def test_gradients_flow_through_the_jet(net):
    x = torch.randn(2, 30, dtype=torch.float64)
    d1 = torch.randn(2, 3, 30, dtype=torch.float64)
    y, y1, _ = net.jet(x, d1)
    ((y**2).sum() + (y1**2).sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    net.zero_grad()


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive layer widths"):
        jets.MLP(hidden=(10, 0))
    m = jets.MLP(hidden=(4,), inputs=5, outputs=2)
    with pytest.raises(ValueError, match="need first-order"):
        m.jet(torch.zeros(1, 5), None, None, [(0, 0)])
