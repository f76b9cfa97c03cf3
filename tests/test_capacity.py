"""The first-layer bound on gradient alignment: constructed cases and the inequality itself."""
import torch

from cubelib import capacity, jets, robustness


def rank6_gradients(B=5, P=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(B, 6, P, generator=g, dtype=torch.float64)
    return torch.randn(B, 9, 6, generator=g, dtype=torch.float64) @ basis


def test_floor_without_a_subspace_is_the_zero_network_v_max():
    gO = rank6_gradients()
    zero = robustness.vulnerabilities(torch.zeros_like(gO), gO).v_max
    assert torch.allclose(capacity.floor(gO, None), zero, rtol=1e-12)


def test_a_subspace_holding_every_gradient_has_no_floor():
    gO = rank6_gradients()
    Q = capacity.principal_directions(gO, 30)  # 5 images x 6 dimensions
    assert capacity.floor(gO, Q).max() < 1e-6 * capacity.floor(gO, None).max()
    assert capacity.floor(gO, capacity.principal_directions(gO, 10)).min() > 0


def test_the_floor_bounds_a_real_networks_v_max_and_is_reached():
    torch.manual_seed(0)
    net = jets.MLP((4, 6), inputs=60).double()
    gO = rank6_gradients()
    x = torch.rand(5, 60, dtype=torch.float64, requires_grad=True)
    y = net(x)
    gN = torch.stack([torch.autograd.grad(y[:, k].sum(), x, retain_graph=True)[0] for k in range(9)], 1)
    Q = capacity.first_layer_basis(net)
    assert Q.shape == (60, 4)
    assert torch.allclose(gN - (gN @ Q) @ Q.T, torch.zeros_like(gN), atol=1e-12)  # gradients in the row space
    bound = capacity.floor(gO, Q)
    assert (robustness.vulnerabilities(gN, gO).v_max >= bound - 1e-9).all()
    # equality for the network that matches the oracle inside the subspace
    best = robustness.vulnerabilities((gO @ Q) @ Q.T, gO).v_max
    assert torch.allclose(best, bound, rtol=1e-10)


def test_the_stored_capacity_analysis_bounds_the_trained_robust_network(env, monkeypatch):
    """analyses.capacity_bound at smoke: each robust network's v_max is at least the bound of
    its own first layer (on the same images), the principal floors fall as L grows and stay
    below the zero network's v_max; the file is then read, not recomputed."""
    from cubelib import analyses, train
    found = analyses.capacity_bound("smoke", progress=False)
    floors = [found["floors"][str(L)] for L in found["spec"]["widths"]]
    assert all(a >= b - 1e-9 for a, b in zip(floors, floors[1:])) and floors[0] <= found["zero_network"] + 1e-9
    for row in found["networks"].values():
        assert row["own_floor"] <= row["v_max"] + 1e-9 and row["v_max"] > 0
    monkeypatch.setattr(train, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = analyses.capacity_bound("smoke", compute=False)
    assert again["networks"] == found["networks"] and again["provenance"] == found["provenance"]
