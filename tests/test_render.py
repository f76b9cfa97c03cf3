"""Renderer checks against independent references (see tests/reference.py)."""
import math

import numpy as np
import pytest
import torch
from scipy.special import owens_t as scipy_owens_t

from cubelib import geometry, render, sampling
from cubelib.geometry import FACE_COLORS, FACES, PAIRS, Camera
from reference import convex_polygon_integral, cube_image, rectangle_integral

SIGMA = render.SIGMA


def poses(n, start=0):
    return sampling.sample_vertices(n, start)


def extreme_poses():
    """Corners of the pose box: largest shifts and angles, several axes."""
    p = np.array([[a, b, c, e, r, t] for a in (0, 1) for b in (0, 1) for c in (0, 1)
                  for e in (0, 1) for r, t in ((0.5, 0.0), (0.0, 0.3))], float)
    axis, angle, shift = sampling.params_to_pose(p)
    return geometry.pose_vertices(axis, angle, shift)


def test_owens_t_matches_scipy():
    h = torch.linspace(-12, 12, 241, dtype=torch.float64)[:, None]
    a = torch.cat([torch.linspace(-40, 40, 401), torch.tensor([1e-8, 1e8])]).double()[None]
    ours = render.owens_t(h, a).numpy()
    assert np.abs(ours - scipy_owens_t(h.numpy(), a.numpy())).max() < 2e-16


def test_rectangles_through_pixel_centres_are_exact():
    # edges along pixel rows/columns and a corner on a pixel centre: the h = 0 and s = 0 cases
    pts = render.pixel_grid(41)
    for x0, x1, y0, y1 in [(-0.5, 0.25, -0.1, 0.6), (0.0, 0.05, 0.0, 0.05), (-1.0, 1.0, -0.3, -0.3 + 1e-9)]:
        poly = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=torch.float64)
        ref = rectangle_integral(x0, x1, y0, y1, pts.numpy(), SIGMA)
        for p in (poly, poly.flip(0)):  # either orientation
            ours = render.polygon_integral(p, pts).numpy()
            assert np.abs(ours - ref).max() < 1e-13


def test_triangle_and_tiny_polygons_match_slicing():
    pts = render.pixel_grid(41)
    rng = np.random.default_rng(0)
    for scale in (0.6, 0.05, 1e-3):
        tri = rng.uniform(-0.5, 0.5, (3, 2)) * scale
        ours = render.polygon_integral(torch.tensor(tri), pts).numpy()
        ref = convex_polygon_integral(tri, pts.numpy(), SIGMA)
        assert np.abs(ours - ref).max() < 1e-13


def test_slicing_reference_agrees_with_adaptive_quadrature():
    # guard the reference itself: a few pixels by scipy's adaptive dblquad
    from scipy.integrate import dblquad
    tri = np.array([[-0.1, -0.05], [0.12, 0.0], [0.0, 0.1]])
    pts = np.array([[0.0, 0.0], [0.12, 0.0], [0.05, 0.1], [-0.15, -0.1]])
    ref = convex_polygon_integral(tri, pts, SIGMA)
    for p, r in zip(pts, ref):
        # y between the two lower edges and the upper edges, x from -0.1 to 0.12
        def y_lo(x):
            return np.interp(x, [-0.1, 0.12], [-0.05, 0.0])

        def y_hi(x):
            return np.interp(x, [-0.1, 0.0, 0.12], [-0.05, 0.1, 0.0])

        g = lambda y, x: math.exp(-((x - p[0]) ** 2 + (y - p[1]) ** 2) / (2 * SIGMA**2)) / (2 * math.pi * SIGMA**2)
        val, _ = dblquad(g, -0.1, 0.12, y_lo, y_hi, epsabs=1e-14, epsrel=1e-13)
        assert abs(val - r) < 1e-12


@pytest.mark.parametrize("which", ["sampled", "extreme"])
def test_cube_pixels_match_independent_integration(which):
    verts = poses(12, start=1000) if which == "sampled" else extreme_poses()[::3]
    img = render.render(verts).image.reshape(len(verts), -1).numpy()
    cam = geometry.DEFAULT_CAMERA
    pts = render.pixel_grid(41).numpy()
    project = lambda q: cam.project(torch.tensor(q)).numpy()
    centre = cam.centre().numpy()
    for k, v in enumerate(verts):
        ref = cube_image(v.numpy(), FACES.tolist(), FACE_COLORS.tolist(), centre, project, pts, SIGMA)
        assert np.abs(img[k] - ref).max() < 1e-12


def _fd_d1(verts, eps):
    """Central differences of images along each nu_i of the original operator (13)."""
    out = []
    for i in range(6):
        nu = torch.zeros(6, dtype=torch.float64)
        nu[i] = eps
        plus = render.render(geometry.transform(verts, nu)).image
        minus = render.render(geometry.transform(verts, -nu)).image
        out.append((plus - minus) / (2 * eps))
    return torch.stack(out, 1)


def test_d1_matches_central_differences_with_eps_squared_convergence():
    verts = torch.cat([poses(4, start=77), extreme_poses()[:2]])
    d1 = render.render(verts, order=1).d1
    eps_list = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6]
    errs = []
    for eps in eps_list:
        fd = _fd_d1(verts, eps)
        errs.append(((fd - d1).norm() / d1.norm()).item())
    slopes = np.diff(np.log(errs)) / np.diff(np.log(eps_list))
    # truncation error ~ eps^2 over three decades, reaching 1e-8 relative
    assert np.all(np.abs(slopes - 2) < 0.15), (errs, slopes)
    assert min(errs) < 1e-8, errs


def _second_difference(verts, i, j, h):
    def img(a, b):
        nu = torch.zeros(6, dtype=torch.float64)
        nu[i] += a
        nu[j] += b
        return render.render(geometry.transform(verts, nu)).image
    if i == j:
        return (img(h, 0) - 2 * img(0, 0) + img(-h, 0)) / h**2
    return (img(h, h) - img(h, -h) - img(-h, h) + img(-h, -h)) / (4 * h * h)


def test_d2_matches_second_differences_of_the_original_operator():
    verts = torch.cat([poses(2, start=5), extreme_poses()[5:6]])
    d2 = render.render(verts, order=2).d2
    for k, (i, j) in enumerate(PAIRS):
        # Richardson-extrapolated second differences of images (error O(h^4))
        h = 2e-3
        ref = (4 * _second_difference(verts, i, j, h / 2) - _second_difference(verts, i, j, h)) / 3
        rel = ((d2[:, k] - ref).norm() / ref.norm()).item()
        assert rel < 1e-5, (i, j, rel)


def test_quadratic_expansion_has_third_order_error():
    verts = poses(3, start=11)
    r = render.render(verts, order=2)
    H = torch.zeros(3, 6, 6, 41, 41, dtype=torch.float64)
    for k, (i, j) in enumerate(PAIRS):
        H[:, i, j] = r.d2[:, k]
        H[:, j, i] = r.d2[:, k]
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(6, generator=g, dtype=torch.float64)
    direction[:3] *= 0.3  # radians
    direction[3:] *= 0.05
    errs1, errs2 = [], []
    ts = [0.2, 0.1, 0.05, 0.025]
    for t in ts:
        nu = t * direction
        exact = render.render(geometry.transform(verts, nu)).image
        lin = r.image + torch.einsum("i,bixy->bxy", nu, r.d1)
        quad = lin + 0.5 * torch.einsum("i,j,bijxy->bxy", nu, nu, H)
        errs1.append((exact - lin).norm().item())
        errs2.append((exact - quad).norm().item())
    p1 = np.diff(np.log(errs1)) / np.diff(np.log(ts))
    p2 = np.diff(np.log(errs2)) / np.diff(np.log(ts))
    assert np.all(np.abs(p1[-2:] - 2) < 0.2), p1
    assert np.all(np.abs(p2[-2:] - 3) < 0.2), p2


def test_batched_equals_single_and_chunking():
    verts = poses(5)
    full = render.render(verts, order=1, chunk=2)
    one = render.render(verts[3], order=1)
    assert one.image.shape == (41, 41) and one.d1.shape == (6, 41, 41)
    assert torch.equal(full.image[3], one.image) or torch.allclose(full.image[3], one.image, atol=1e-15)
    assert torch.allclose(full.d1[3], one.d1, atol=1e-13)


def test_rest_cube_shows_three_equal_faces():
    r = render.render(geometry.C0, order=0)
    assert r.visible.tolist() == [True, False, True, False, True, False]
    cam = geometry.DEFAULT_CAMERA
    areas = [abs(render._signed_area(cam.project(geometry.C0[f]))).item() for f in FACES[r.visible]]
    assert max(areas) - min(areas) < 1e-12
    # the blur preserves mass: on a grid finer than sigma (spacing 0.01, aliasing ~ e^-177)
    # the pixel sum times the pixel area is sum(colour * projected area)
    fine = render.render(geometry.C0, order=0, resolution=201).image
    mass = fine.sum().item() * 0.01**2
    expect = sum(c * a for c, a in zip(FACE_COLORS[r.visible].tolist(), areas))
    assert abs(mass - expect) < 1e-10


def test_general_camera_is_accepted():
    # a camera turned about z sees the same cube turned the other way
    ang = 0.3
    R = ((math.cos(ang), -math.sin(ang), 0.0), (math.sin(ang), math.cos(ang), 0.0), (0.0, 0.0, 1.0))
    cam = Camera(R=R)
    verts = poses(2)
    Rz = torch.tensor(R, dtype=torch.float64)
    a = render.render(verts, camera=cam).image
    b = render.render(verts @ Rz.T).image
    assert torch.allclose(a, b, atol=1e-13)


def test_bad_input_is_refused_with_a_clear_message():
    v = poses(2)
    with pytest.raises(ValueError, match=r"shape \[B, 8, 3\]"):
        render.render(v[:, :7])
    with pytest.raises(TypeError, match="floating point"):
        render.render(v.long())
    with pytest.raises(ValueError, match="order must be 0, 1 or 2"):
        render.render(v, order=3)
    with pytest.raises(ValueError, match="leaves the image frame"):
        render.render(v + torch.tensor([0.9, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="camera plane"):
        render.render(v + torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        render.render(v * float("nan"))
    with pytest.raises(ValueError, match="focal length"):
        Camera(f=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        render.render(v, sigma=0.0)
    with pytest.raises(ValueError, match=r"eps \(the step of eq. 45\)"):
        render.render(v, order=2, eps=0.0)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        render.render(v, chunk=0)
    with pytest.raises(ValueError, match="order=2 needs dtype=torch.float64"):
        render.render(v, order=2, dtype=torch.float32)


def test_float32_rendering_is_finite_and_close():
    v = poses(3)
    a = render.render(v, order=1)
    b = render.render(v, order=1, dtype=torch.float32)
    assert torch.isfinite(b.image).all() and torch.isfinite(b.d1).all()
    assert (a.image - b.image.double()).abs().max() < 1e-5
    # the h = 0 and vertex-on-pixel cases of float32
    sq = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.1, 0.1], [0.0, 0.1]], dtype=torch.float32)
    val = render.polygon_integral(sq, render.pixel_grid(41, dtype=torch.float32))
    ref = render.polygon_integral(sq.double(), render.pixel_grid(41))
    assert torch.isfinite(val).all() and (val.double() - ref).abs().max() < 1e-5


def test_stripe_contrast_matches_one_dimensional_sum_and_resolution():
    from scipy.special import ndtr
    for n in (10, 28, 29):
        w = 2 / n
        k = n // 2
        xs = [-1 + (k + 0.5) * w, -1 + (k + 1.5) * w]
        p = [sum(ndtr((-1 + (j + 1) * w - x) / SIGMA) - ndtr((-1 + j * w - x) / SIGMA) for j in range(0, n, 2))
             for x in xs]
        ref = (max(p) - min(p)) / (max(p) + min(p))
        assert abs(render.stripe_contrast(n) - ref) < 1e-12
    # the continuous pattern crosses 50 % just past 29 lines; on the 41 pixels 29 lines drop below
    assert render.stripe_contrast(29) > 0.5 > render.stripe_contrast(30)
    assert render.effective_resolution() == 29
    assert render.effective_resolution(on_pixels=True) == 28


def test_point_sample_is_the_limit_of_the_blur():
    # far from edges the blurred pixel equals the face colour; the colour function is exact there
    verts = poses(3)
    pts = render.pixel_grid(41)
    sharp = render.point_sample(verts, pts)
    blurred = render.render(verts, sigma=1e-4).image.reshape(3, -1)
    assert ((sharp - blurred).abs() < 1e-9).float().mean() > 0.97
