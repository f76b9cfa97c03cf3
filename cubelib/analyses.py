"""Analyses over several trained networks, stored with the results: the noise sweep of
Figs. 9-10 (cubelib.noise) and 004's robustness indicator of every network (cubelib.inputspace).

Each is computed once from the networks' stored weights and kept in
results/<preset>/analysis-<kind>-<key>.json (store.analysis), so the book builds from files.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from . import capacity, data, experiments, inputspace, noise, presets, robustness, store
from .experiments import Robust


def best(scores: dict, e_limit: float | None = None):
    """The label in `scores` (label -> (test e, test v_max)) with the lowest v_max, among those
    with e <= `e_limit` when given (if none qualifies: the lowest e).  The one rule by which
    the book picks a sweep's "best" network."""
    ok = {k: ev for k, ev in scores.items() if e_limit is None or ev[0] <= e_limit}
    if ok:
        return min(ok, key=lambda k: ok[k][1])
    return min(scores, key=lambda k: scores[k][0])


def at_least_as_good(a: dict, b: dict) -> bool:
    """Metrics `a` at least as good as `b` on both axes of the error-vulnerability plane (test
    e and v_max, ties count): the one such rule of the book."""
    return a["e_test"] <= b["e_test"] and a["v_max_test"] <= b["v_max_test"]


def at_error(points: list, e: float) -> tuple[float, int] | None:
    """The v_max a sweep reaches at test error `e`: `points` are its (test e, test v_max) in the
    sweep's order; between the two neighbours whose errors bracket `e`, interpolated linearly in
    log e and log v_max (the axes of the error-vulnerability plane), the lowest where several
    segments bracket it.  (v_max, index of the segment's first point); None where `e` lies
    outside the errors the sweep spans."""
    found = []
    for i, ((e0, v0), (e1, v1)) in enumerate(zip(points, points[1:])):
        if not min(e0, e1) <= e <= max(e0, e1):
            continue
        if e0 == e1:  # a vertical segment: its lower end
            found.append((min(v0, v1), i))
            continue
        t = math.log(e / e0) / math.log(e1 / e0)
        found.append((math.exp((1 - t) * math.log(v0) + t * math.log(v1)), i))
    return min(found) if found else None


def scores(results: dict) -> dict:
    """label -> (test e, test v_max) of results (label -> store.Result), for `best`."""
    return {k: (r.e_test, r.v_max_test) for k, r in results.items()}


def _get(exp, compute: bool, device="cpu"):
    return store.run(exp, device=device, progress=False) if compute else store.load(exp)


def best_gaussian(preset, compute: bool = True, device="cpu"):
    """The Gaussian augmentation of the sigma sweep with the lowest test v_max: the paper's
    "best result of Gaussian augmentation" (N_.095 in Figs. 9-10); None if one is missing."""
    p = presets.get(preset)
    exps = {s: experiments.gaussian_sweep(p, s) for s in p.sigmas}
    found = {s: _get(e, compute, device) for s, e in exps.items()}
    if any(r is None for r in found.values()):
        return None
    return exps[best(scores(found))]


def figure_networks(preset, compute: bool = True, device="cpu") -> dict | None:
    """The networks of Figs. 9-10: first- (I) and second-order (II) robust training of the
    preset's largest robust recipe (paper: the 20M network; quick: L = 128 with R_high;
    paper-small: L = 256), each with and without the trade-off epoch, and the best Gaussian
    augmentation (N)."""
    p = presets.get(preset)
    kind, width = largest_robust(p)
    nets = {}
    for label, second in (("I", False), ("II", True)):
        nets[label] = experiments.robust(p, Robust(second=second, **kind), width)
        nets[f"{label} + E0+E1 epoch"] = experiments.robust(p, Robust(second=second, tradeoff=True, **kind), width)
    gaussian = best_gaussian(p, compute, device)
    if gaussian is None:
        return None
    nets[f"N {gaussian.recipe.phases[0].terms[0].noise:g}"] = gaussian
    return nets


def largest_robust(p: presets.Preset) -> tuple[dict, int]:
    """(Robust fields, width) of the preset's largest robust recipe: the 20M network, else
    R_high at its width, else plain robust training at the largest width."""
    if p.deep_width:
        return dict(deep=True), p.deep_width
    if p.high_width:
        return dict(high=True), p.high_width
    return {}, max(p.widths)


def noise_sweep(preset, networks: dict | None = None, seed: int = 0, compute: bool = True, device="cpu",
                progress: bool = True, sigmas=None) -> dict | None:
    """Error and v_max of each network (label -> Experiment; default: `figure_networks`) under
    noise of the preset's sigmas (or `sigmas`), against the oracle's answers (eq. 52 and
    eq. 9), on the first test images.  None when it is not stored and compute is False."""
    p = presets.get(preset) if sigmas is None else presets.get(preset, noise_sigmas=tuple(sigmas))
    networks = networks if networks is not None else figure_networks(p, compute, device)
    if networks is None:
        return None
    spec = {"networks": {k: e.key() for k, e in networks.items()}, "seed": seed, "sigmas": list(p.noise_sigmas),
            "images": p.noise_images, "data": data.dataset_config(p, order=2).key()}

    def compute_sweep():
        ds = data.load(data.dataset_config(p, order=2), device=device, progress=progress)
        models = {label: store.network(exp, device=device) for label, exp in networks.items()}
        out = {"preset": p.name, "seed": seed, "images": min(p.noise_images, len(ds.test)),
               "sigmas": list(p.noise_sigmas), "oracle": [], "networks": {label: [] for label in networks},
               "experiments": {label: exp.name for label, exp in networks.items()}}
        for sigma in tqdm(p.noise_sigmas, desc="noise sweep", unit="sigma", disable=not progress):
            no = noise.noisy_oracle(ds.test, sigma, p.noise_images, seed)
            out["oracle"].append(noise.oracle_summary(no, ds.norms.D_i))
            for label, model in models.items():
                out["networks"][label].append(noise.metrics(model, no, ds.norms.D_i, device))
        return out

    return store.analysis(p.name, "noise", spec, (noise, compute_sweep), compute_sweep if compute else None)


def indicator_table(preset, networks: dict | None = None, seed: int = 0, compute: bool = True,
                    progress: bool = True) -> dict | None:
    """004's indicator of each network (name -> Experiment; default: every network of the
    paper's chapters) on the first test images, next to its test e and vulnerabilities."""
    p = presets.get(preset)
    networks = networks if networks is not None else {e.name: e for e in experiments.book_experiments(p)}
    spec = {"networks": {k: e.key() for k, e in sorted(networks.items())}, "seed": seed,
            "images": p.indicator_images}

    def compute_table():
        ds = data.load(data.dataset_config(p, order=1), progress=progress)
        k = min(p.indicator_images, len(ds.test))
        out = {"preset": p.name, "images": k, "networks": {}}
        for name, exp in tqdm(sorted(networks.items()), desc="indicator", unit="network", disable=not progress):
            m = store.run(exp, progress=progress).metrics
            row = inputspace.indicator(store.network(exp), ds.test.image[:k], ds.test.target[:k], ds.norms.n, seed=seed)
            row.update({key: m[key] for key in ("e_test", "v_max_test", "v_sen_test", "v_inv_test")})
            out["networks"][name] = row
        return out

    return store.analysis(p.name, "indicator", spec, (inputspace, compute_table), compute_table if compute else None)



def capacity_bound(preset, compute: bool = True, device="cpu", progress: bool = True,
                   floor_widths=(16, 32, 64, 128, 256, 512, 1024), norm_images: int = 2048) -> dict | None:
    """The first layer's bound on v_max (cubelib.capacity) against what the robust networks of
    the preset reached, on the first min(n_test, attack_images) test images: the floor for
    L principal directions of the oracle gradients of `norm_images` training images, the bound
    from each robust network's own first layer, and that network's v_max on the same images.
    None when it is not stored and compute is False."""
    p = presets.get(preset)
    nets = {w: experiments.robust(p, Robust(), w) for w in p.widths}
    widths = sorted(set(floor_widths) | set(p.widths))
    n = min(p.n_test, p.attack_images)
    spec = {"networks": {str(w): e.key() for w, e in nets.items()}, "images": n, "norm_images": norm_images,
            "widths": widths, "data": data.dataset_config(p, order=1).key()}

    def compute_bound():
        ds = data.load(data.dataset_config(p, order=1), progress=progress)
        grad_O = data.oracle_gradients(ds.test, n)
        pcs = capacity.principal_directions(data.oracle_gradients(ds.train, norm_images), max(widths))
        out = {"preset": p.name, "images": n, "norm_images": norm_images,
               "floors": {str(L): float(capacity.floor(grad_O, pcs[:, :L]).mean()) for L in widths},
               "zero_network": float(capacity.floor(grad_O, None).mean()), "networks": {}}
        images = ds.test.image[:n].to(torch.float64)
        for w, exp in nets.items():
            model = store.network(exp, device="cpu").double()
            out["networks"][str(w)] = {
                "name": exp.name, "own_floor": float(capacity.floor(grad_O, capacity.first_layer_basis(model)).mean()),
                "v_max": robustness.measure(model, images, grad_O)["v_max"]}
        return out

    return store.analysis(p.name, "capacity", spec, (capacity, compute_bound), compute_bound if compute else None)


def null_network(preset, compute: bool = True, progress: bool = True) -> dict | None:
    """What a network that ignores its input scores at `preset` (claims.Claim.null): e of the
    training set's mean answer on the test set (eq. 8), and the mean v_max, v_sen, v_inv of a
    network with zero input gradient on the test images every network's vulnerabilities are
    measured on (evaluate.VUL_IMAGES).  Rendered on its own (those test images only), so a
    preset whose data set is not cached costs seconds, not the training set's hour; where
    computing is switched off (CUBELIB_NO_TRAIN) and no file is stored, computed anyway and
    not stored, since it trains nothing."""
    from . import evaluate, geometry, sampling
    p = presets.get(preset)
    cfg = data.dataset_config(p, order=1)
    n = min(p.n_test, evaluate.VUL_IMAGES)
    spec = {"data": cfg.key(), "images": n}

    def compute_null():
        mean = geometry.target(sampling.sample_vertices(cfg.n_train, cfg.start)).double()
        test_target = geometry.target(sampling.sample_vertices(cfg.n_test, cfg.start + cfg.n_train)).double()
        D = mean.std(0)  # the D_i of eq. (8), as data.compute_norms takes them
        e = 100 * ((test_target - mean.mean(0)) ** 2).mean(0).sqrt() / D
        split = data.build_split(cfg.start + cfg.n_train, n, 1, cfg.sigma, data._STORAGE[cfg.storage],
                                 progress=progress, desc="null network's test images")
        grad_O = data.oracle_gradients(split)
        vul = robustness.vulnerabilities(torch.zeros_like(grad_O), grad_O)
        return {"preset": p.name, "images": n, "e_test": e.mean().item(),
                **{f"{k}_test": getattr(vul, k).mean().item() for k in ("v_max", "v_sen", "v_inv")}}

    try:
        return store.analysis(p.name, "null", spec, (robustness, compute_null), compute_null if compute else None)
    except store.TrainingDisabled:  # it trains nothing and takes seconds: computed, not stored
        return dict(compute_null(), spec=spec)
