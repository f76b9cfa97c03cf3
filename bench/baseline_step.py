"""Cost of one training step of each baseline (papers 002-004) relative to a conventional step.

For each method prints the best-of-N step time and its ratio to the plain E0 step, measured
in one run (the methods interleaved, so a noisy neighbour hits them alike); also the
pullback-based gradient of Loss IBP against the same term by torch.autograd's create_graph
(double backpropagation), which it replaces.  The papers' own ratios, for reference: 002
Table 1 (MNIST): Loss IBP 1.49x, Prediction IBP 1.75x, fast AT 1.51x, Tangent BP 4.9x
(5 tangents); 003: JR with one projection ~1.3x.

    python bench/baseline_step.py [--device cpu|cuda] [--width 128] [--batch 231] [--repeat 7]
"""
import argparse
import time

import torch

from cubelib import baselines, jets
from cubelib import terms as T


class Batch:
    """Random stand-in for trainset.TrainSet: image + six tangent rows, targets."""

    def __init__(self, B, device, generator):
        self.rows = torch.rand(B, 7, 1681, generator=generator).to(device)
        self.target = torch.randn(B, 9, generator=generator).to(device)
        self.target_d1 = torch.randn(B, 6, 9, generator=generator).to(device)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--width", type=int, default=128, help="hidden width L (>= 1)")
    p.add_argument("--batch", type=int, default=231, help="images per step (>= 1)")
    p.add_argument("--repeat", type=int, default=7, help="timed rounds (>= 1)")
    a = p.parse_args()
    if a.width < 1 or a.batch < 1 or a.repeat < 1:
        p.error("--width, --batch and --repeat must be positive")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    dev = a.device
    g = torch.Generator().manual_seed(0)
    model = jets.MLP((a.width, a.width, a.width, 128), generator=g).to(dev)
    batch = Batch(a.batch, dev, g)
    idx = torch.arange(a.batch, device=dev)
    norms = T.Norms(n=0.7, n_i=torch.ones(6, device=dev), D=torch.ones(9, device=dev))
    proj = baselines.unit_projections(a.batch, 1, g).to(dev)

    def step(*terms, e0=T.E0(), projections=None):
        draws = T.Epoch(dirs={}, d2O={}, projections=projections)

        def run():
            model.zero_grad(set_to_none=True)
            sum(T.evaluate(model, batch, idx, (e0, *terms), norms, draws).values()).backward()
        return run

    def create_graph_ibp():
        model.zero_grad(set_to_none=True)
        x = batch.rows[:, 0].clone().requires_grad_(True)
        e0 = ((model(x) - batch.target) ** 2).sum(-1) / 0.7**2
        (gx,) = torch.autograd.grad(e0.sum(), x, create_graph=True)
        (e0.mean() + gx.abs().sum(-1).mean()).backward()

    methods = {
        "conventional (E0)": step(),
        "Loss IBP, l1 (002)": step(T.LossIBP()),
        "Loss IBP via create_graph": create_graph_ibp,
        "Prediction IBP (002)": step(T.PredictionIBP()),
        "Tangent BP, 6 tangents (002)": step(T.TangentBP()),
        "fast AT (002)": step(e0=T.E0(adversarial_eps=0.01)),
        "JR, 1 projection (003)": step(T.JacobianNorm(n_proj=1), projections=proj),
        "JR, exact (003)": step(T.JacobianNorm(n_proj=0)),
        "gradient reg., l2 (004)": step(T.GradientReg(norm="l2")),
    }
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    best = {k: float("inf") for k in methods}
    for f in methods.values():  # warm-up
        f()
    for _ in range(a.repeat):
        for k, f in methods.items():
            sync()
            t = time.perf_counter()
            f()
            sync()
            best[k] = min(best[k], time.perf_counter() - t)
    name = torch.cuda.get_device_name() if dev == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; L = {a.width}; {a.batch} images per step; best of {a.repeat}")
    base = best["conventional (E0)"]
    for k, t in best.items():
        print(f"{k:32s} {t * 1e3:8.2f} ms   {t / base:5.2f}x conventional")
    print(f"pullback / create_graph for Loss IBP: {best['Loss IBP, l1 (002)'] / best['Loss IBP via create_graph']:.2f}")


if __name__ == "__main__":
    main()
