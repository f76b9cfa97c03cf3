"""What a trained network is measured by: the error e (eq. 8), the input-gradient norm of §3.6
and the vulnerabilities v_max, v_sen, v_inv (eqs. 33-41), all in full float32 (no TF32)."""
from __future__ import annotations

import torch

from . import data, robustness

# vulnerabilities of a result on the first VUL_IMAGES images of each split (quick: the whole
# test set; paper: a fifth of it, which fixes the mean to ~0.1 % of v); of a learning-curve
# point on the first CURVE_VUL_IMAGES test images
VUL_IMAGES = 4096
CURVE_VUL_IMAGES = 128


class fp32_matmul:
    """Context: full-precision float32 matmuls on CUDA (TF32 off), restored on exit."""

    def __enter__(self):
        self.old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self.old


def error_e(model, x, target, D, batch=8192) -> torch.Tensor:
    """Eq. (8) per output: rms(N_i - C_i) / D_i, in percent; e is the mean of the 9.
    Evaluated without TF32, so the reported error is the network's, not the rounding's."""
    with torch.no_grad(), fp32_matmul():
        sq = torch.zeros(target.shape[1], dtype=torch.float64, device=x.device)
        for i in range(0, x.shape[0], batch):
            sq += ((model(x[i:i + batch]) - target[i:i + batch]).double() ** 2).sum(0)
        return 100 * torch.sqrt(sq / x.shape[0]) / D.to(sq)


def input_gradient_norm(model, x, output: int = 0, batch: int = 4096) -> float:
    """Mean over images of ||dN_output / dI|| (the adversarial gradient of §3.6)."""
    norms = []
    for i in range(0, x.shape[0], batch):
        xb = x[i:i + batch].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xb)[:, output].sum(), xb)
        norms.append(g.norm(dim=1))
    return torch.cat(norms).mean().item()


def flat_images(split: data.Split, device) -> torch.Tensor:
    return split.image.reshape(len(split), -1).to(device, torch.float32)


def curve_vulnerability(split: data.Split, device):
    """(images, oracle gradients) of the learning curves' v_max, or None without dI/dnu."""
    if split.d1 is None:
        return None
    return (split.image[:CURVE_VUL_IMAGES].to(device, torch.float32),
            data.oracle_gradients(split, CURVE_VUL_IMAGES).to(device))


def metrics(model, ds: data.Dataset, device) -> dict:
    """Errors on both splits, their per-output values, ||grad N_1||, the weight count, and with
    image derivatives the mean vulnerabilities on the first VUL_IMAGES images of each split."""
    with fp32_matmul():
        D = ds.norms.D_i
        x_test = flat_images(ds.test, device)
        e_train = error_e(model, flat_images(ds.train, device), ds.train.target.to(device, torch.float32), D)
        e_test = error_e(model, x_test, ds.test.target.to(device, torch.float32), D)
        out = {"e_train": e_train.mean().item(), "e_test": e_test.mean().item(),
               "e_train_per_output": e_train.tolist(), "e_test_per_output": e_test.tolist(),
               "grad_norm_N1": input_gradient_norm(model, x_test), "n_weights": model.n_weights()}
        if ds.test.d1 is not None:
            for name, split in (("train", ds.train), ("test", ds.test)):
                n = min(VUL_IMAGES, len(split))
                vul = robustness.measure(model, split.image[:n].to(device, torch.float32),
                                         data.oracle_gradients(split, n).to(device))
                out.update({f"{k}_{name}": v for k, v in vul.items()})
            out["vul_images"] = {"train": min(VUL_IMAGES, len(ds.train)), "test": min(VUL_IMAGES, len(ds.test))}
        return out
