"""The cube, its poses (eq. 6), the local transform T(nu) (eq. 13) and the camera (eq. 2).

Conventions (see DESIGN.md):
  * vertices: [..., 8, 3]; the network's target C is the first three vertices, flattened
    (x1, y1, z1, x2, ...): `target(vertices)` -> [..., 9].
  * nu_1..nu_3 (index 0..2): rotations about x, y, z through the cube centre, composed as
    Rz(nu_3) Ry(nu_2) Rx(nu_1) (eq. 13); nu_4..nu_6 (index 3..5): translations along x, y, z.
  * second derivatives d2/dnu_i dnu_j with i <= j: 21 entries, upper triangle, row-major
    (`PAIRS[k] = (i, j)`).

The rest cube C0 (erratum 2 of the extracted text): side 2/5, centred at the origin, with one
body diagonal pointing at the camera so three faces are equally visible.  Its vertices are
(+-1, +-1, +-1) * 1/5 in the cube's own frame, rotated by `CUBE_FRAME` so that the frame's
(1, 1, 1) diagonal becomes +z (the camera sits at z = +5).  Vertex order: 0 = (-,+,+),
1 = (+,+,+) (the vertex nearest the camera), 2 = (+,-,+), so the first three vertices are two
edges of the top face meeting at the near vertex.  The author's generator (img-gen.m) builds
the same eight vertices; the paper's printed C0 column 1 is exactly vertex 4, column 2 exactly
vertex 1, and column 3 is no vertex (one sign from vertex 2 or 6): the paper's targets were
probably vertices 4, 1 and 2 or 6 (the rendering chapter compares the choices).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SIDE = 0.4

# Vertex signs in the cube's own frame. The first three are the target (see module doc).
VERTEX_SIGNS = torch.tensor(
    [
        [-1, +1, +1],
        [+1, +1, +1],
        [+1, -1, +1],
        [-1, -1, +1],
        [-1, +1, -1],
        [+1, +1, -1],
        [+1, -1, -1],
        [-1, -1, -1],
    ],
    dtype=torch.float64,
)

# Faces: 4 vertex indices each, counter-clockwise seen from outside (outward normal by the
# right-hand rule).  Ordered by axis of the outward normal: +x, -x, +y, -y, +z, -z.
FACES = torch.tensor(
    [
        [1, 2, 6, 5],  # +x
        [0, 4, 7, 3],  # -x
        [0, 1, 5, 4],  # +y
        [3, 7, 6, 2],  # -y
        [0, 3, 2, 1],  # +z
        [4, 5, 6, 7],  # -z
    ],
    dtype=torch.long,
)
FACE_AXIS = torch.tensor([0, 0, 1, 1, 2, 2])
FACE_SIGN = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], dtype=torch.float64)

# Colours: the paper gives 1, 2/3, 1/6 for the three faces visible at rest (+x, +y, +z here)
# and "intensities from 1/6 to 1" overall; we read that as the six multiples of 1/6 and give
# the opposite faces 5/6, 1/2, 1/3.  In the data set's pose range no hidden face ever turns
# to the camera (rendering.md measures this), so those three never show.
FACE_COLORS = torch.tensor([1.0, 5 / 6, 2 / 3, 1 / 2, 1 / 6, 1 / 3], dtype=torch.float64)

# Rows: the cube frame's axes expressed so that (1, 1, 1)/sqrt(3) maps to +z.
CUBE_FRAME = torch.tensor(
    [
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
    ],
    dtype=torch.float64,
)
# Turn about z so that vertex 2 sits where the paper's third column of C0 points in the
# image plane (azimuth 60 degrees); pure cosmetics, it fixes the rest orientation.
_az = math.atan2(*(CUBE_FRAME @ VERTEX_SIGNS[2])[[1, 0]].tolist())
_turn = math.radians(60.0) - _az
_Rz = torch.tensor(
    [[math.cos(_turn), -math.sin(_turn), 0.0], [math.sin(_turn), math.cos(_turn), 0.0], [0.0, 0.0, 1.0]],
    dtype=torch.float64,
)
CUBE_FRAME = _Rz @ CUBE_FRAME
C0 = (SIDE / 2) * VERTEX_SIGNS @ CUBE_FRAME.T  # [8, 3], the rest cube

# Index pairs (i, j), i <= j, of the 21 second derivatives, row-major upper triangle.
PAIRS = [(i, j) for i in range(6) for j in range(i, 6)]
PAIR_INDEX = {p: k for k, p in enumerate(PAIRS)}

NU_NAMES = ["rot x", "rot y", "rot z", "shift x", "shift y", "shift z"]
# SYMMETRIC[i, j] = index k of the pair (min(i, j), max(i, j)): x[:, SYMMETRIC] turns the 21
# upper-triangle entries [B, 21, ...] into the full symmetric [B, 6, 6, ...]
SYMMETRIC = torch.tensor([[PAIR_INDEX[(min(i, j), max(i, j))] for j in range(6)] for i in range(6)])


def target(vertices: torch.Tensor) -> torch.Tensor:
    """The 9 outputs of the problem (eq. 1): the first three vertices, flattened."""
    return vertices[..., :3, :].reshape(*vertices.shape[:-2], 9)


# --------------------------------------------------------------------------------------
# Rotations

def axis_angle_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices R(r, phi) by Rodrigues' formula; axis [..., 3] unit, angle [...]."""
    axis = axis / axis.norm(dim=-1, keepdim=True)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + s * K + (1 - c) * (K @ K)


def basis_rotation(k: int, angle: torch.Tensor) -> torch.Tensor:
    """Rotation by `angle` [...] about basis axis k (0 = x, 1 = y, 2 = z): [..., 3, 3]."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if k == 0:
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif k == 1:
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(rows, -1).reshape(*angle.shape, 3, 3)


def generators(dtype=torch.float64, device=None) -> torch.Tensor:
    """K_k = d/dnu R_k(nu) at 0, so that K_k a = e_k x a: [3, 3, 3]."""
    K = torch.zeros(3, 3, 3, dtype=dtype, device=device)
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        K[k, j, i] = 1.0
        K[k, i, j] = -1.0
    return K


# --------------------------------------------------------------------------------------
# Poses (eq. 6) and the local transform (eq. 13)

def pose_vertices(axis: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """C(r, phi, d) = R(r, phi) C0 + d (eq. 6): axis [B, 3], angle [B], shift [B, 3] -> [B, 8, 3]."""
    R = axis_angle_matrix(axis, angle)
    c0 = C0.to(dtype=axis.dtype, device=axis.device)
    return c0 @ R.transpose(-1, -2) + shift[..., None, :]


def transform(vertices: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
    """T(nu) C (eq. 13): rotate about the centre by Rz(nu3) Ry(nu2) Rx(nu1), then shift.

    vertices [..., 8, 3], nu [..., 6] (broadcast against each other).
    """
    centre = vertices.mean(dim=-2, keepdim=True)
    R = basis_rotation(2, nu[..., 2]) @ basis_rotation(1, nu[..., 1]) @ basis_rotation(0, nu[..., 0])
    return (vertices - centre) @ R.transpose(-1, -2) + centre + nu[..., None, 3:]


def vertex_d1(vertices: torch.Tensor) -> torch.Tensor:
    """dC/dnu_i at nu = 0, closed form: [..., 6, 8, 3] (e_k x (x - d) for rotations, e_k for shifts)."""
    rel = vertices - vertices.mean(dim=-2, keepdim=True)
    K = generators(vertices.dtype, vertices.device)
    rot = torch.einsum("kab,...vb->...kva", K, rel)
    shift = torch.eye(3, dtype=vertices.dtype, device=vertices.device)[:, None, :].expand(
        *vertices.shape[:-2], 3, 8, 3
    )
    return torch.cat([rot, shift], dim=-3)


def vertex_d2(vertices: torch.Tensor) -> torch.Tensor:
    """d2C/dnu_i dnu_j at nu = 0 for the 21 pairs i <= j: [..., 21, 8, 3].

    Only rotation pairs are non-zero: K_i K_i (x - d) on the diagonal and K_j K_i (x - d) for
    i < j, because R_j stands to the left of R_i in Rz Ry Rx.
    """
    rel = vertices - vertices.mean(dim=-2, keepdim=True)
    K = generators(vertices.dtype, vertices.device)
    out = torch.zeros(*vertices.shape[:-2], 21, 8, 3, dtype=vertices.dtype, device=vertices.device)
    for k, (i, j) in enumerate(PAIRS):
        if j < 3:
            out[..., k, :, :] = rel @ (K[j] @ K[i]).T
    return out


# --------------------------------------------------------------------------------------
# Camera (eq. 2)

@dataclass(frozen=True)
class Camera:
    """Pinhole camera P = [[f, 0, cx], [0, f, cy], [0, 0, 1]] [R | t] (eq. 2).

    Defaults are the paper's: f = 5, t = (0, 0, -5), c = 0, R = I.  With them the depth
    z + t_z is negative and the image is point-reflected (erratum 4), which is harmless.
    """

    f: float = 5.0
    t: tuple[float, float, float] = (0.0, 0.0, -5.0)
    c: tuple[float, float] = (0.0, 0.0)
    R: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self):
        if not (math.isfinite(self.f) and self.f > 0):
            raise ValueError(f"Camera.f must be a positive finite focal length, got {self.f}")
        R = torch.tensor(self.R, dtype=torch.float64)
        if R.shape != (3, 3) or not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-9) \
                or torch.linalg.det(R) < 0:
            raise ValueError("Camera.R must be a 3x3 proper rotation matrix (R R^T = I, det R = +1)")

    def tensors(self, dtype=torch.float64, device=None):
        R = torch.tensor(self.R, dtype=dtype, device=device)
        t = torch.tensor(self.t, dtype=dtype, device=device)
        c = torch.tensor(self.c, dtype=dtype, device=device)
        return R, t, c

    def centre(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """The camera's position in world coordinates, -R^T t."""
        R, t, _ = self.tensors(dtype, device)
        return -(R.T @ t)

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        R, t, _ = self.tensors(points.dtype, points.device)
        return points @ R.T + t

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """(u, v) of points [..., 3] -> [..., 2]."""
        _, _, c = self.tensors(points.dtype, points.device)
        pc = self.to_camera(points)
        return self.f * pc[..., :2] / pc[..., 2:3] + c

    def project_velocity(self, points: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """d(u, v) of points [..., 3] moving with velocities [..., 3] (broadcast) -> [..., 2].

        du = f/z dx - f x/z^2 dz in camera coordinates (section 4.2).
        """
        R, _, _ = self.tensors(points.dtype, points.device)
        pc = self.to_camera(points)
        vc = velocity @ R.T
        z = pc[..., 2:3]
        return self.f * (vc[..., :2] / z - pc[..., :2] * vc[..., 2:3] / z**2)


DEFAULT_CAMERA = Camera()


def check_vertices(vertices: torch.Tensor, name: str = "vertices") -> torch.Tensor:
    """Validate a vertex tensor [..., 8, 3] of floating dtype; return it as given."""
    if not isinstance(vertices, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, 8, 3], got {type(vertices).__name__}")
    if vertices.ndim < 2 or tuple(vertices.shape[-2:]) != (8, 3):
        raise ValueError(f"{name} must have shape [B, 8, 3] (8 vertices, xyz), got {tuple(vertices.shape)}")
    if not vertices.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point (float64 recommended), got {vertices.dtype}")
    if not torch.isfinite(vertices).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return vertices
