"""Exact Gaussian-blurred rendering of the cube and its analytic image derivatives.

Pixel value (eq. 4-5, with the 2D normalisation of erratum 1):
    p(c) = sum over visible faces Q of colour(Q) * integral_Q phi_sigma(x - c) dx.
We work in units of sigma, with c at the origin.  The field F(r) = (1 - exp(-r^2/2)) / (2 pi r)
r_hat has div F = phi (the standard 2D normal density) and no singularity at r = 0, so by
Green's theorem the integral over any simple polygon is a sum over its edges.  For an edge
at signed distance h from c (positive when c lies on the inner side) running from arc
position s_A to s_B along its line (s measured from the foot of the perpendicular),
    edge term = h / 2pi * int (1 - exp(-(h^2 + s^2)/2)) / (h^2 + s^2) ds
              = angle / 2pi - sign(h) [T(|h|, s_B/|h|) - T(|h|, s_A/|h|)],
with `angle` the angle the edge subtends at c and T Owen's T function.  Owen's T is evaluated
for a <= 1 by 12-point Gauss-Legendre quadrature of its defining integral (absolute error
< 1e-16 for every h, measured against scipy in tests) and for a > 1 by the identity
T(h, a) = [Phi(h) Q(ah) + Phi(ah) Q(h)] / 2 - T(ah, 1/a).

First derivatives (eqs. 16-18): the boundary moves with velocity V(t), linear along each
edge; d p / d nu = colour * sum_edges int V.n phi ds, which is exact in closed form:
    int_{s_A}^{s_B} (weight_A(s) V_A.n + weight_B(s) V_B.n) phi ds
with G0 = int exp(-s^2/2) ds (erf) and G1 = int s exp(-s^2/2) ds (exp).

Second derivatives (eq. 45): central differences of the analytic first derivatives between
the cubes T(+-eps e_i) C, eps = 5e-6, for i <= j only (so the composition order matches
eq. 13: operator i first, then j).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import geometry
from .geometry import DEFAULT_CAMERA, FACE_COLORS, FACES, PAIRS, Camera

SIGMA = 0.03
RESOLUTION = 41
EXTENT = 1.0
EPS_D2 = 5e-6
# Bump when the rendered numbers change, so cached data sets made by older code are rebuilt.
RENDER_VERSION = 1

_SQRT2 = math.sqrt(2.0)
_TWO_PI = 2.0 * math.pi
_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)
_GL_XI = (_GL_X + 1) / 2  # nodes on [0, 1]
_GL_WH = _GL_W / 2  # weights on [0, 1]
_GL_XI2 = torch.tensor(_GL_XI**2)
_GL_WH_T = torch.tensor(_GL_WH)


def pixel_grid(resolution: int = RESOLUTION, extent: float = EXTENT, dtype=torch.float64, device=None):
    """Pixel centres [resolution^2, 2] as (u, v), row-major with row = v, both from -extent to extent."""
    g = torch.linspace(-extent, extent, resolution, dtype=dtype, device=device)
    v, u = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


# --------------------------------------------------------------------------------------
# Special functions

def _upper_tail(x):
    """Q(x) = 1 - Phi(x) for the standard normal, accurate in the upper tail."""
    return 0.5 * torch.erfc(x / _SQRT2)


def _owens_t_small(p, q):
    """T(p, q/p) for 0 <= q <= p (so a <= 1), by 12-point Gauss-Legendre in x = a xi."""
    a = q / p
    xi2 = _GL_XI2.to(p)
    terms = torch.exp(-0.5 * (q * q)[..., None] * xi2) / (1 + (a * a)[..., None] * xi2)
    return torch.exp(-0.5 * p * p) * a * (terms @ _GL_WH_T.to(p)) / _TWO_PI


def owens_t(h, a):
    """Owen's T(h, a) for real h and a (elementwise tensors of one dtype)."""
    h, a = torch.broadcast_tensors(h, a)
    hh = h.abs().clamp_min(torch.finfo(h.dtype).tiny)
    return torch.sign(a) * _owens_t_hs(hh, (a * hh).abs())


def _owens_t_hs(hh, ss):
    """T(hh, ss/hh) for hh > 0, ss >= 0."""
    p = torch.maximum(hh, ss)
    q = torch.minimum(hh, ss)
    small = _owens_t_small(p, q)
    # a > 1: T(h, a) = [Phi(h) Q(ah) + Phi(ah) Q(h)] / 2 - T(ah, 1/a)
    Qh, Qs = _upper_tail(hh), _upper_tail(ss)
    big = 0.5 * ((1 - Qh) * Qs + (1 - Qs) * Qh) - small
    return torch.where(ss <= hh, small, big)


# --------------------------------------------------------------------------------------
# Edge geometry and the per-edge integrals

def _edge_frame(A, B, orient, points):
    """For edges A->B ([..., E, 2], sigma units) of polygons with orientation `orient`
    ([..., E], +1 counter-clockwise, -1 clockwise) and points [P, 2]: signed distance h,
    arc positions s_A, s_B (all [..., E, P]), length L [..., E] and outward normal [..., E, 2]."""
    d = B - A
    L = d.norm(dim=-1)
    t = d / L.clamp_min(torch.finfo(L.dtype).tiny)[..., None]
    n = orient[..., None] * torch.stack([t[..., 1], -t[..., 0]], -1)
    rx = A[..., 0, None] - points[:, 0]  # [..., E, P]
    ry = A[..., 1, None] - points[:, 1]
    h = rx * n[..., 0, None] + ry * n[..., 1, None]
    sA = rx * t[..., 0, None] + ry * t[..., 1, None]
    sB = sA + L[..., None]
    return h, sA, sB, L, n


# Beyond this distance (sigma units) from an edge segment the Gaussian terms of the edge are
# below exp(-9.5^2 / 2) ~ 3e-20: only the subtended angle remains, so they are skipped.
NEAR = 9.5


def _near(h, sA, sB):
    """Flat indices of the pixel-edge pairs closer than NEAR (sigma units) to the segment."""
    along = torch.clamp(torch.zeros_like(sA), sA, sB)  # nearest arc position on the segment
    return torch.nonzero((h * h + along * along < NEAR * NEAR).reshape(-1)).squeeze(1)


def _edge_values(h, sA, sB, near=None):
    """Integral of the 2D standard normal over the polygon, edge by edge (see module doc)."""
    tiny = torch.tensor(torch.finfo(h.dtype).tiny, dtype=h.dtype, device=h.device)
    h = torch.where(h.abs() < tiny, tiny, h)  # h = 0 contributes 0; keep the sign convention +
    out = torch.atan2(h * (sB - sA), h * h + sA * sB) / _TWO_PI
    if near is None:
        near = _near(h, sA, sB)
    hn, sAn, sBn = h.reshape(-1)[near], sA.reshape(-1)[near], sB.reshape(-1)[near]
    hh = hn.abs()
    tB = torch.sign(sBn) * _owens_t_hs(hh, sBn.abs())
    tA = torch.sign(sAn) * _owens_t_hs(hh, sAn.abs())
    out.view(-1).index_add_(0, near, -torch.sign(hn) * (tB - tA))
    return out


def _edge_weights(h, sA, sB, L, near):
    """(w_A, w_B) with int_edge V.n phi ds = (V_A.n) w_A + (V_B.n) w_B for V linear along the edge.

    Zero for pairs that are not `near` (their Gaussian factor is < 3e-20)."""
    hn, sAn, sBn = h.reshape(-1)[near], sA.reshape(-1)[near], sB.reshape(-1)[near]
    Ln = L[..., None].expand_as(h).reshape(-1)[near]
    G0 = math.sqrt(math.pi / 2) * (torch.erf(sBn / _SQRT2) - torch.erf(sAn / _SQRT2))
    G1 = torch.exp(-0.5 * sAn * sAn) - torch.exp(-0.5 * sBn * sBn)
    scale = torch.exp(-0.5 * hn * hn) / (_TWO_PI * Ln.clamp_min(torch.finfo(Ln.dtype).tiny))
    wA, wB = torch.zeros_like(h), torch.zeros_like(h)
    wA.view(-1)[near] = scale * (sBn * G0 - G1)
    wB.view(-1)[near] = scale * (G1 - sAn * G0)
    return wA, wB


def _signed_area(poly):
    """Shoelace signed area of polygons [..., K, 2] (positive counter-clockwise)."""
    x, y = poly[..., 0], poly[..., 1]
    return 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)


def polygon_integral(polygons: torch.Tensor, points: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """Integral of the normalised Gaussian (std `sigma`) centred at each point over each polygon.

    polygons [..., K, 2] (any simple polygon, either orientation), points [P, 2] -> [..., P].
    """
    poly = polygons / sigma
    pts = points.to(poly) / sigma
    orient = torch.sign(_signed_area(poly))[..., None].expand(poly.shape[:-1])
    h, sA, sB, _, _ = _edge_frame(poly, poly.roll(-1, -2), orient, pts)
    return _edge_values(h, sA, sB).sum(-2)


# --------------------------------------------------------------------------------------
# The cube

@dataclass
class RenderResult:
    """image [B, 41, 41]; d1 [B, 6, 41, 41] (order >= 1); d2 [B, 21, 41, 41] (order 2);
    visible [B, 6] which faces face the camera (FACES order)."""

    image: torch.Tensor
    d1: torch.Tensor | None = None
    d2: torch.Tensor | None = None
    visible: torch.Tensor | None = None


def visible_faces(vertices: torch.Tensor, camera: Camera = DEFAULT_CAMERA) -> torch.Tensor:
    """Faces turned towards the camera centre, [..., 6] bool (at most one per axis pair)."""
    quads = vertices[..., FACES.to(vertices.device), :]  # [..., 6, 4, 3]
    normal = torch.cross(quads[..., 2, :] - quads[..., 0, :], quads[..., 3, :] - quads[..., 1, :], dim=-1)
    to_cam = camera.centre(vertices.dtype, vertices.device) - quads.mean(-2)
    return (normal * to_cam).sum(-1) > 0


def check_frame(vertices: torch.Tensor, camera: Camera = DEFAULT_CAMERA, extent: float = EXTENT):
    """Raise ValueError if the cube straddles or touches the camera plane, or if a projected
    vertex leaves the image frame [-extent, extent]^2."""
    depth = camera.to_camera(vertices)[..., 2]
    same_side = (depth > 1e-9).all(-1) | (depth < -1e-9).all(-1)
    if not bool(same_side.all()):
        bad = (~same_side).nonzero()[0].tolist()
        raise ValueError(
            f"camera plane cuts the cube (vertices on both sides of the camera or on it) for item {bad}; "
            "move the cube in front of the camera (depth z + t_z must keep one sign)")
    uv = camera.project(vertices)
    reach = uv.abs().amax(dim=(-1, -2))
    if bool((reach > extent).any()):
        bad = (reach > extent).nonzero()[0].tolist()
        raise ValueError(
            f"the projected cube leaves the image frame [-{extent}, {extent}]^2 for item {bad} "
            f"(max |u|, |v| = {reach.max().item():.4f}); keep the centre within the sampled range")


def _edge_tables():
    """For each choice of one face per axis pair (bit k set: the minus face of axis k), the 9
    distinct edges of the three faces: (vertex a, vertex b, face on whose boundary a->b runs
    counter-clockwise, face on the other side or 6 for none).  Three faces of different axes
    meet pairwise, so 3 edges are shared and 6 lie on the silhouette."""
    tables = []
    for combo in range(8):
        edges = {}
        for k in range(3):
            f = 2 * k + ((combo >> k) & 1)
            quad = FACES[f].tolist()
            for e in range(4):
                a, b = quad[e], quad[(e + 1) % 4]
                if (b, a) in edges:
                    edges[(b, a)][1] = f
                else:
                    edges[(a, b)] = [f, 6]
        tables.append([[a, b, f, g] for (a, b), (f, g) in edges.items()])
    return torch.tensor(tables, dtype=torch.long)  # [8, 9, 4]


EDGE_TABLES = _edge_tables()


def _render_chunk(vertices, order, camera, sigma, colors, points):
    """Image [B, P] and (order 1) d1 [B, 6, P] of cubes [B, 8, 3], plus visible faces [B, 6]."""
    dtype, device = vertices.dtype, vertices.device
    Bsz = vertices.shape[0]
    vis = visible_faces(vertices, camera)  # [B, 6], at most one face per axis pair
    combo = (vis[:, 1::2].long() * torch.tensor([1, 2, 4], device=device)).sum(1)
    table = EDGE_TABLES.to(device)[combo]  # [B, 9, 4]
    # colour of each face if visible, with a zero slot 6 for "no face"
    shade = torch.cat([colors.to(dtype=dtype, device=device) * vis.to(dtype),
                       torch.zeros(Bsz, 1, dtype=dtype, device=device)], 1)
    weight = shade.gather(1, table[..., 2]) - shade.gather(1, table[..., 3])  # [B, 9]
    uv = camera.project(vertices) / sigma  # [B, 8, 2]
    # all front-facing faces share one orientation in the image; read it off their areas
    area = _signed_area(uv[:, FACES.to(device)])  # [B, 6]
    orient = torch.sign((area * vis.to(dtype)).sum(1, keepdim=True)).expand(-1, 9)
    ia, ib = table[..., 0], table[..., 1]
    A = uv.gather(1, ia[..., None].expand(-1, -1, 2))
    B = uv.gather(1, ib[..., None].expand(-1, -1, 2))
    h, sA, sB, L, n = _edge_frame(A, B, orient, points / sigma)
    near = _near(h, sA, sB)
    image = torch.einsum("be,bep->bp", weight, _edge_values(h, sA, sB, near))
    d1 = None
    if order >= 1:
        vel = camera.project_velocity(vertices[:, None], geometry.vertex_d1(vertices)) / sigma  # [B, 6, 8, 2]
        VA = vel.gather(2, ia[:, None, :, None].expand(-1, 6, -1, 2))  # [B, 6, 9, 2]
        VB = vel.gather(2, ib[:, None, :, None].expand(-1, 6, -1, 2))
        Vn = torch.cat([(VA * n[:, None]).sum(-1), (VB * n[:, None]).sum(-1)], 2) * weight.repeat(1, 2)[:, None]
        wA, wB = _edge_weights(h, sA, sB, L, near)
        d1 = torch.bmm(Vn, torch.cat([wA, wB], 1))  # [B, 6, P]
    return image, d1, vis


def render(
    vertices: torch.Tensor,
    order: int = 0,
    camera: Camera = DEFAULT_CAMERA,
    sigma: float = SIGMA,
    resolution: int = RESOLUTION,
    colors: torch.Tensor = FACE_COLORS,
    eps: float = EPS_D2,
    chunk: int | None = None,
    check: bool = True,
    dtype: torch.dtype = torch.float64,
) -> RenderResult:
    """Render cubes with vertices [B, 8, 3] (or [8, 3]) and their derivatives up to `order`.

    Returns image [B, R, R] (R = resolution), and for order >= 1 d1 [B, 6, R, R] (dI/dnu_i),
    for order 2 d2 [B, 21, R, R] (d2I/dnu_i dnu_j, i <= j, geometry.PAIRS order).  Computed in
    `dtype` (float64 by default; second derivatives by finite differences need it) on the
    vertices' device.  `check` raises ValueError for poses the camera cannot image.
    """
    geometry.check_vertices(vertices)
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if not (isinstance(resolution, int) and resolution >= 2):
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    if order == 2 and dtype != torch.float64:
        raise ValueError("order=2 needs dtype=torch.float64: eq. (45) differences first derivatives at eps = 5e-6")
    if not (isinstance(eps, (int, float)) and 0 < eps < 1e-2):
        raise ValueError(f"eps (the step of eq. 45) must be a number in (0, 1e-2), got {eps!r}")
    if chunk is not None and not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive integer (cubes rendered at once), got {chunk!r}")
    single = vertices.ndim == 2
    if single:
        vertices = vertices[None]
    if vertices.ndim != 3:
        raise ValueError(f"vertices must have shape [B, 8, 3], got {tuple(vertices.shape)}")
    vertices = vertices.to(dtype)
    if check:
        check_frame(vertices, camera)
    device = vertices.device
    points = pixel_grid(resolution, EXTENT, dtype, device)
    if chunk is None:
        chunk = 1024 if device.type == "cuda" else 32
    B = vertices.shape[0]
    R = resolution

    def first_order(verts):
        outs = [_render_chunk(verts[i:i + chunk], min(order, 1), camera, sigma, colors, points)
                for i in range(0, verts.shape[0], chunk)]
        image = torch.cat([o[0] for o in outs])
        d1 = torch.cat([o[1] for o in outs]) if order >= 1 else None
        vis = torch.cat([o[2] for o in outs])
        return image, d1, vis

    image, d1, vis = first_order(vertices)
    d2 = None
    if order == 2:
        d2 = second_derivatives(vertices, camera, sigma, colors, points, eps, chunk)
        d2 = d2.reshape(B, 21, R, R)
    result = RenderResult(
        image=image.reshape(B, R, R),
        d1=d1.reshape(B, 6, R, R) if d1 is not None else None,
        d2=d2,
        visible=vis,
    )
    if single:
        result = RenderResult(*(None if x is None else x[0] for x in
                                (result.image, result.d1, result.d2, result.visible)))
    return result


def second_derivatives(vertices, camera, sigma, colors, points, eps=EPS_D2, chunk=32):
    """Eq. (45): d2I/dnu_i dnu_j = [dI/dnu_j (T(eps e_i) C) - dI/dnu_j (T(-eps e_i) C)] / 2 eps, i <= j.

    Returns [B, 21, P]; renders the 12 displaced cubes of each input in batches.
    """
    B = vertices.shape[0]
    nu = torch.zeros(12, 6, dtype=vertices.dtype, device=vertices.device)
    for i in range(6):
        nu[2 * i, i], nu[2 * i + 1, i] = eps, -eps
    moved = geometry.transform(vertices[:, None], nu[None])  # [B, 12, 8, 3]
    moved = moved.reshape(B * 12, 8, 3)
    d1 = torch.cat([_render_chunk(moved[k:k + chunk], 1, camera, sigma, colors, points)[1]
                    for k in range(0, moved.shape[0], chunk)])
    d1 = d1.reshape(B, 6, 2, 6, -1)  # [B, i, +/-, j, P]
    diff = (d1[:, :, 0] - d1[:, :, 1]) / (2 * eps)  # [B, i, j, P]
    return torch.stack([diff[:, i, j] for i, j in PAIRS], 1)


# --------------------------------------------------------------------------------------
# Without the blur, and the resolution the blur leaves

def point_sample(vertices: torch.Tensor, points: torch.Tensor, camera: Camera = DEFAULT_CAMERA,
                 colors: torch.Tensor = FACE_COLORS) -> torch.Tensor:
    """The colour function itself at points [M, 2] (no anti-aliasing): [B, M] for vertices [B, 8, 3]."""
    geometry.check_vertices(vertices)
    vis = visible_faces(vertices, camera)
    uv = camera.project(vertices)[:, FACES.to(vertices.device)]  # [B, 6, 4, 2]
    orient = torch.sign(_signed_area(uv))[..., None, None]
    e = uv.roll(-1, -2) - uv  # edge vectors
    rel = points.to(uv)[None, None, None] - uv[..., None, :]  # [B, 6, 4, M, 2]
    cross = e[..., None, 0] * rel[..., 1] - e[..., None, 1] * rel[..., 0]
    inside = ((orient * cross) >= 0).all(-2) & vis[..., None]  # [B, 6, M]
    return (inside.to(uv) * colors.to(uv)[:, None]).sum(1)


def stripe_contrast(n_lines: int, sigma: float = SIGMA, on_pixels: bool = False) -> float:
    """Contrast (p_max - p_min) / (p_max + p_min) of n alternating white and black stripes
    covering [-1, 1] after the blur of eq. (4).

    on_pixels=False reads p at the centres of the two central stripes (the continuous
    pattern); on_pixels=True reads the extremes over the 41 pixel centres of one image row,
    leaving out the two pixels at each end, where the pattern meets the black surround.
    """
    w = 2.0 / n_lines
    rects = torch.tensor([[[-1 + k * w, -1.0], [-1 + (k + 1) * w, -1.0], [-1 + (k + 1) * w, 1.0],
                           [-1 + k * w, 1.0]] for k in range(0, n_lines, 2)], dtype=torch.float64)
    if on_pixels:
        u = torch.linspace(-EXTENT, EXTENT, RESOLUTION, dtype=torch.float64)[2:-2]
        points = torch.stack([u, torch.zeros_like(u)], -1)
    else:
        k = n_lines // 2
        points = torch.tensor([[-1 + (k + 0.5) * w, 0.0], [-1 + (k + 1.5) * w, 0.0]], dtype=torch.float64)
    p = polygon_integral(rects, points, sigma).sum(0)
    return ((p.max() - p.min()) / (p.max() + p.min())).item()


def effective_resolution(sigma: float = SIGMA, contrast: float = 0.5, on_pixels: bool = False) -> int:
    """The largest number of lines across [-1, 1] kept at `contrast` or more (section 3.3.2):
    counting up from 2 until the next count falls below."""
    n = 2
    while stripe_contrast(n + 1, sigma, on_pixels) >= contrast:
        n += 1
    return n
