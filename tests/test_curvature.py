"""The decomposition of d2N along the manifold (cubelib.curvature) against torch.func in
float64, and its oracle side against the oracle's gradients."""
import pytest
import torch
from torch.func import jvp

from cubelib import curvature, data, jets
from cubelib.geometry import PAIRS


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    cfg = data.DatasetConfig(n_train=6, n_test=2, order=2)
    return data.load(cfg, cache_dir=tmp_path_factory.mktemp("c"), progress=False).train


def test_parts_match_nested_jvps(split):
    net = jets.MLP((10, 8), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = curvature.decompose(net, split, n=4)
    x = split.image[:4].reshape(4, -1).double()
    d1 = split.d1[:4].reshape(4, 6, -1).double()
    d2 = split.d2[:4].reshape(4, 21, -1).double()
    curv, total = [], []
    for k, (i, j) in enumerate(PAIRS):
        def along_i(z, i=i):
            return jvp(net, (z,), (d1[:, i],))[1]
        hess = jvp(along_i, (x,), (d1[:, j],))[1]  # H_N[dI_i, dI_j]
        curv.append(hess)
        total.append(hess + jvp(net, (x,), (d2[:, k],))[1])
    rms = lambda t: torch.stack(t, 1).norm(dim=-1).pow(2).mean(0).sqrt()
    assert torch.allclose(got.curvature, rms(curv), rtol=1e-9)
    assert torch.allclose(got.total, rms(total), rtol=1e-9)
    assert net.weights[0].dtype == torch.float64  # the caller's network is left as it was


def test_tangential_and_normal_parts_add_up_and_the_oracle_sees_no_normal_part(split):
    c, normal = curvature.tangent_split(split.d1[:4], split.d2[:4])
    J = split.d1[:4].flatten(2).double()
    H = split.d2[:4].flatten(2).double()
    assert torch.allclose(c @ J + normal, H, atol=1e-9)
    assert (normal @ J.transpose(1, 2)).abs().max() < 1e-8 * H.abs().max()  # P d2I is orthogonal to every dI_k
    # the oracle's gradients (eqs. 25-26) lie in the tangent space: grad O . P d2I = 0, and
    # grad O . d2I = sum_k c_k dC/dnu_k, the tau of a network with exact first derivatives
    grad_O = data.oracle_gradients(split, 4)  # [4, 9, P]
    assert (normal @ grad_O.transpose(1, 2)).abs().max() < 1e-8 * (H @ grad_O.transpose(1, 2)).abs().max()
    assert torch.allclose(H @ grad_O.transpose(1, 2), c @ split.target_d1[:4].double(), rtol=1e-8, atol=1e-10)
