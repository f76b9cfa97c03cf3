"""Geometry and sampling against independent references (autograd in float64, scipy.qmc)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import qmc

from cubelib import geometry, sampling
from cubelib.geometry import C0, PAIRS


def test_rest_cube_is_a_cube_with_its_diagonal_towards_the_camera():
    d = torch.cdist(C0, C0)
    edges = (d - geometry.SIDE).abs() < 1e-12
    assert edges.sum().item() == 8 * 3  # each vertex has 3 neighbours at distance 2/5
    assert torch.allclose(C0.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-15)
    # vertex 1 is on the z axis, nearest the camera at z = +5
    assert torch.allclose(C0[1], torch.tensor([0, 0, math.sqrt(3) / 5], dtype=torch.float64), atol=1e-15)
    # the first three vertices: two edges of one face meeting at vertex 1
    assert abs(d[0, 1] - 0.4) < 1e-12 and abs(d[1, 2] - 0.4) < 1e-12
    # faces are planar squares with outward counter-clockwise order
    for f in geometry.FACES:
        q = C0[f]
        n = torch.cross(q[2] - q[0], q[3] - q[1], dim=0)
        assert (n @ (q.mean(0) - C0.mean(0))) > 0
        assert torch.allclose((q - q.mean(0)) @ n, torch.zeros(4, dtype=torch.float64), atol=1e-14)


def _transform_one(nu, verts):
    return geometry.transform(verts, nu)


def test_vertex_derivatives_match_autograd():
    verts = sampling.sample_vertices(3, start=9)
    nu0 = torch.zeros(6, dtype=torch.float64)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda nu: _transform_one(nu, verts[b]), nu0)  # [8, 3, 6]
        assert torch.allclose(geometry.vertex_d1(verts[b]), jac.permute(2, 0, 1), atol=1e-14)
        hess = torch.autograd.functional.jacobian(
            lambda nu: torch.autograd.functional.jacobian(lambda m: _transform_one(m, verts[b]), nu, create_graph=True),
            nu0)  # [8, 3, 6, 6]
        d2 = geometry.vertex_d2(verts[b])
        for k, (i, j) in enumerate(PAIRS):
            assert torch.allclose(d2[k], hess[..., i, j], atol=1e-14)
        # only the six rotation pairs are non-zero
        nonzero = [k for k in range(21) if d2[k].abs().max() > 0]
        assert [PAIRS[k] for k in nonzero] == [(i, j) for (i, j) in PAIRS if j < 3]


def test_transform_order_is_rz_ry_rx():
    v = C0
    a, b = 0.3, -0.2
    nu = torch.tensor([a, b, 0, 0, 0, 0], dtype=torch.float64)
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=torch.float64)
    Ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]], dtype=torch.float64)
    expect = v @ (Ry @ Rx).T  # first about x, then about y
    assert torch.allclose(geometry.transform(v, nu), expect, atol=1e-15)


def test_pose_rotation_is_orthonormal_and_keeps_shape():
    verts = sampling.sample_vertices(50)
    centred = verts - verts.mean(1, keepdim=True)
    assert torch.allclose(torch.cdist(centred, centred), torch.cdist(C0, C0).expand(50, 8, 8), atol=1e-13)
    shift = verts.mean(1)
    assert shift.abs().max() <= sampling.SHIFT_RANGE + 1e-12


def test_projection_velocity_matches_finite_differences():
    cam = geometry.DEFAULT_CAMERA
    verts = sampling.sample_vertices(2)
    vel = geometry.vertex_d1(verts)
    eps = 1e-6
    for i in range(6):
        nu = torch.zeros(6, dtype=torch.float64)
        nu[i] = eps
        fd = (cam.project(geometry.transform(verts, nu)) - cam.project(geometry.transform(verts, -nu))) / (2 * eps)
        assert torch.allclose(cam.project_velocity(verts, vel[:, i]), fd, atol=1e-8)


def test_generalized_golden_ratio_and_sequence():
    g = sampling.generalized_golden_ratio(6)
    assert abs(g**7 - g - 1) < 1e-14 and 1.112 < g < 1.113
    assert abs(sampling.generalized_golden_ratio(1) - (1 + math.sqrt(5)) / 2) < 1e-14
    x = sampling.r_sequence(5)
    alpha = g ** -np.arange(1, 7)
    assert np.allclose(x[0], np.mod(0.5 + alpha, 1)) and np.allclose(x[1], np.mod(0.5 + 2 * alpha, 1))
    assert np.array_equal(sampling.r_sequence(3, start=2), x[2:5])


def test_r_sequence_has_lower_discrepancy_than_random():
    n = 1024
    r = qmc.discrepancy(sampling.r_sequence(n), method="CD")
    rng = np.random.default_rng(0)
    rand = [qmc.discrepancy(rng.random((n, 6)), method="CD") for _ in range(5)]
    assert r < 0.5 * min(rand)


def test_pose_mapping_ranges():
    axis, angle, shift = sampling.params_to_pose(sampling.r_sequence(2000))
    assert torch.allclose(axis.norm(dim=1), torch.ones(2000, dtype=torch.float64))
    assert angle.abs().max() <= math.pi / 8 and shift.abs().max() <= 0.52
    with pytest.raises(ValueError, match=r"\[B, 6\]"):
        sampling.params_to_pose(np.zeros((3, 5)))


def test_symmetric_index_fills_the_full_matrix():
    x = torch.arange(21.0)[None]  # entry k holds k
    H = x[:, geometry.SYMMETRIC][0]
    assert torch.equal(H, H.T)
    for k, (i, j) in enumerate(PAIRS):
        assert H[i, j] == k and H[j, i] == k


def test_the_author_generators_cube_is_ours_and_the_printed_columns_are_vertices_4_and_1():
    """img-gen.m's construction (face corners turned as row vectors) against our C0, and the
    paper's printed C0 columns against both."""
    from cubelib.studies import rendering
    cube = rendering.author_cube(64)
    assert cube["corner_gap"] < 1e-8 and cube["vertex_gap"] < 1e-8
    assert cube["column_vertex"][:2] == [4, 1] and max(cube["column_gap"][:2]) < 1e-12
    assert cube["column_gap"][2] > 0.2  # the third printed column is no vertex of the cube
    # a different turn order would give another cube: the check can fail
    swapped = rendering.AUTHOR_FACES
    for angle, axis in reversed(rendering.AUTHOR_TURNS):
        swapped = swapped @ geometry.basis_rotation(axis, torch.tensor(angle, dtype=torch.float64))
    assert torch.cdist(swapped.reshape(-1, 3), geometry.C0).min(1).values.max() > 1e-2
