"""The network and its extended forward pass (section 4.3, 5.2).

MLP 1681-L-...-L-128-9 with sigmoid hidden units and a linear output.  The extended forward
pass carries, next to the value, K first-order directional derivatives and P second-order
ones through the network.  For a curve x(nu) through input space with tangents x_a and
second derivatives x_ab, every pre-activation z(nu) = W y(nu) + b obeys

    z_a = W y_a,        z_ab = W y_ab                         (linear, no bias)
    y = s(z),  y_a = s'(z) z_a,  y_ab = s''(z) z_a z_b + s'(z) z_ab   (sigmoid s)

so all 1 + K + P rows go through each weight matrix as one matmul, and the nonlinearity is
elementwise.  The backward pass is ordinary autograd through these few lines.

`pullback` is the reverse-mode twin used by the baselines (papers 002-004), which regularise
input gradients: v^T dN/dx = v^T W_L S_{L-1} W_{L-1} ... S_1 W_1 with S_k = diag(s'(z_k)),
M vectors per sample as M rows of each matmul.  It is ordinary differentiable tensor code, so
autograd gives its gradient in the weights ("double backpropagation") without a second graph.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

INPUTS = 41 * 41
OUTPUTS = 9


class MLP(nn.Module):
    """Fully connected network with the paper's initialisation (section 3.5): weights uniform
    in +-2/sqrt(fan_in), the first layer +-10/sqrt(1681), biases uniform in +-0.1."""

    # the precision of the hidden layers' matmuls in `forward` and `jet_rows` (see
    # `matmul_precision`); the weights, the output layer, the elementwise jet arithmetic and
    # everything downstream stay in float32
    matmul_dtype: torch.dtype | None = None

    def __init__(self, hidden=(256, 256, 256, 128), inputs: int = INPUTS, outputs: int = OUTPUTS,
                 generator: torch.Generator | None = None, dtype=torch.float32):
        super().__init__()
        if not hidden or any((not isinstance(h, int)) or h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive layer widths, got {hidden!r}")
        sizes = [inputs, *hidden, outputs]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = (10.0 if k == 0 else 2.0) / math.sqrt(fan_in)
            w = (torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            b = (torch.rand(fan_out, generator=generator, dtype=torch.float64) * 2 - 1) * 0.1
            self.weights.append(nn.Parameter(w.to(dtype)))
            self.biases.append(nn.Parameter(b.to(dtype)))

    @property
    def sizes(self):
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def n_weights(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _mm(self, h: torch.Tensor, w: torch.Tensor, last: bool = False) -> torch.Tensor:
        """h @ w.T; in a hidden layer with `matmul_dtype` set (bfloat16: the CPU's AMX, the
        GPU's tensor cores) both operands are rounded to it, the kernel accumulates in float32
        and rounds the product to bfloat16 (relative 2^-8), which is returned as float32.  The
        output layer (L x 128 x 9, cheap) stays float32, so the outputs themselves are not
        rounded at the 0.4 % of bfloat16 while the errors trained for are ~0.1 %."""
        if self.matmul_dtype is None or last:
            return h @ w.T
        return (h.to(self.matmul_dtype) @ w.to(self.matmul_dtype).T).to(w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Plain forward pass: x [B, inputs] -> [B, outputs]."""
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = self._mm(x, w, k == last) + b
            if k < len(self.weights) - 1:
                x = torch.sigmoid(x)
        return x

    def pullback(self, x: torch.Tensor):
        """Forward pass that keeps what the vector-Jacobian product needs.

        x [B, n] -> (y [B, m], pull) with pull(v [B, M, m]) = v^T dN/dx [B, M, n], M output
        covectors per sample; differentiable in the weights and in v."""
        slopes = []
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w.T + b
            if k < last:
                x = torch.sigmoid(x)
                slopes.append(x * (1 - x))

        def pull(v: torch.Tensor) -> torch.Tensor:
            for k in range(last, -1, -1):
                v = v @ self.weights[k]
                if k > 0:
                    v = v * slopes[k - 1][:, None]
            return v

        return x, pull

    def jet(self, x: torch.Tensor, d1: torch.Tensor | None = None, d2: torch.Tensor | None = None,
            pairs: list[tuple[int, int]] | None = None):
        """Extended forward pass.

        x [B, n] inputs; d1 [B, K, n] first-order input derivatives x_a; d2 [B, P, n]
        second-order input derivatives x_ab for `pairs` (P pairs (a, b) of indices into K),
        or None when they vanish (straight lines in input space, e.g. random directions).
        Returns (y [B, m], y1 [B, K, m] or None, y2 [B, P, m] or None).
        """
        K = 0 if d1 is None else d1.shape[1]
        P = 0 if pairs is None else len(pairs)
        if P and K == 0:
            raise ValueError("second-order pairs need first-order directions d1")
        if d2 is not None and (P == 0 or d2.shape[1] != P):
            raise ValueError(f"d2 has {d2.shape[1]} rows but {P} pairs were given")
        rows = [x[:, None]]
        if K:
            rows.append(d1)
        if P:
            rows.append(d2 if d2 is not None else torch.zeros(x.shape[0], P, x.shape[1], dtype=x.dtype,
                                                              device=x.device))
        return self.jet_rows(torch.cat(rows, 1), K, pairs)

    def jet_rows(self, h: torch.Tensor, K: int, pairs: list[tuple[int, int]] | None = None):
        """`jet` on pre-stacked rows h [B, 1 + K + P, n] = (x, x_1..x_K, x_pair1..x_pairP);
        training keeps its data stacked this way so a batch is a single gather."""
        P = 0 if pairs is None else len(pairs)
        if P and K == 0:
            raise ValueError("second-order pairs need first-order directions (K >= 1)")
        if h.shape[1] != 1 + K + P:
            raise ValueError(f"expected 1 + {K} + {P} rows per sample, got {h.shape[1]}")
        if P:
            ia = torch.tensor([a for a, _ in pairs], device=h.device)
            ib = torch.tensor([b for _, b in pairs], device=h.device)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = self._mm(h, w, k == last)  # one matmul for all rows
            z0 = z[:, 0] + b
            if k == last:
                return (z0, z[:, 1:1 + K] if K else None, z[:, 1 + K:] if P else None)
            s = torch.sigmoid(z0)
            ds = s * (1 - s)
            parts = [s[:, None]]
            if K:
                z1 = z[:, 1:1 + K]
                parts.append(ds[:, None] * z1)
            if P:
                dds = ds * (1 - 2 * s)
                parts.append(dds[:, None] * z1[:, ia] * z1[:, ib] + ds[:, None] * z[:, 1 + K:])
            h = torch.cat(parts, 1)
        raise AssertionError("unreachable")


@contextlib.contextmanager
def matmul_precision(model: MLP, dtype: torch.dtype | None):
    """Within: `model`'s forward and extended passes multiply in `dtype` (None: as stored).
    Training uses it around each step only: learning curves and metrics stay float32."""
    old = model.matmul_dtype
    model.matmul_dtype = dtype
    try:
        yield model
    finally:
        model.matmul_dtype = old
