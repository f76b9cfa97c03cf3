"""Training recipes as typed values: a network's hidden widths and phases of (epochs, learning
rate, terms), each term a value of cubelib.terms with its own weight and settings.

A recipe and a data set determine a trained network (on the CPU bit for bit); `Recipe.key`
names it.  The paper's recipes (§3.5, §4.3, §4.6, §5) are built from a preset by
cubelib.experiments.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import torch

from . import terms as T


@dataclass(frozen=True)
class Phase:
    """`epochs` epochs at learning rate `lr`, minimising the sum of `terms` (one E0 each)."""

    epochs: int
    lr: float
    terms: tuple = (T.E0(),)

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"Phase.epochs must be an integer >= 1, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"Phase.lr must be in (0, 1), got {self.lr!r}")
        if not isinstance(self.terms, tuple) or not all(isinstance(t, T.TERM_TYPES) for t in self.terms):
            raise ValueError(f"Phase.terms must be a tuple of cubelib.terms values, got {self.terms!r}")
        names = [t.name for t in self.terms]
        if names.count("E0") != 1 or len(set(names)) != len(names):
            raise ValueError(f"Phase.terms must hold exactly one E0 and no term twice, got {names}")


PRECISIONS = ("float32", "bfloat16")


def _describe_term(t) -> dict:
    d = {"type": type(t).__name__, **dataclasses.asdict(t)}
    if isinstance(t, T.E2) and d["weight"] == 1.0:
        del d["weight"]  # the paper's E2 keeps the key it had before the weight existed
    return d


@dataclass(frozen=True)
class Recipe:
    hidden: tuple[int, ...] = (256, 256, 256, 128)
    phases: tuple[Phase, ...] = (Phase(1950, 1e-3), Phase(50, 1e-4))
    batches: int = 42
    seed: int = 0
    eval_every: int = 10  # epochs between points of the learning curves
    tf32: bool = True  # TF32 matmuls on CUDA, as the paper trained; ignored on the CPU
    # the training step's matmuls: "float32", or "bfloat16" (operands rounded to bfloat16,
    # products accumulated in float32; weights, optimiser and evaluation stay float32)
    precision: str = "float32"
    # the extended forward pass under torch.compile (inductor fuses the elementwise jet
    # arithmetic): at L = 256 a second-order step 1.46x faster in float32 and 2.45x in
    # bfloat16 (bench/precision.py --compile); other kernels round differently, so it is part
    # of the key like `precision`
    compiled: bool = False

    def __post_init__(self):
        if not self.phases or not all(isinstance(p, Phase) for p in self.phases):
            raise ValueError("Recipe.phases must be a non-empty tuple of Phase")
        for name in ("batches", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"Recipe.{name} must be an integer >= 1, got {v!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Recipe.seed must be an integer >= 0, got {self.seed!r}")
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"Recipe.hidden must be positive layer widths, got {self.hidden!r}")
        if not isinstance(self.compiled, bool):
            raise ValueError(f"Recipe.compiled must be True or False, got {self.compiled!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Recipe.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        rules = {t.n_ij_rule for t in self.all_terms if isinstance(t, T.E2)}
        if len(rules) > 1:  # n_ij are computed once per run
            raise ValueError(f"every E2 of a recipe must use the same n_ij rule, got {sorted(rules)}")

    @property
    def matmul_dtype(self):
        return None if self.precision == "float32" else getattr(torch, self.precision)

    @property
    def all_terms(self) -> list:
        return [t for p in self.phases for t in p.terms]

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    @property
    def order(self) -> int:
        """Image derivatives the data set must hold: 2 for E2 or second-order robust terms,
        1 for E1, Tangent BP and the robust terms (their oracle gradients need dI/dnu)."""
        ts = self.all_terms
        if any(isinstance(t, T.E2) or (isinstance(t, T.Robust) and t.order == 2) for t in ts):
            return 2
        return 1 if any(isinstance(t, (T.E1, T.TangentBP, T.Robust)) for t in ts) else 0

    @property
    def families(self) -> list[str]:
        return T.families(self.all_terms)

    @property
    def robust(self) -> bool:
        return any(isinstance(t, T.Robust) for t in self.all_terms)

    @property
    def second_families(self) -> list[str]:
        return T.second_families(self.all_terms)

    @property
    def n_ij_rule(self) -> str | None:
        e2 = T.find(self.all_terms, T.E2)
        return None if e2 is None else e2.n_ij_rule

    def describe(self) -> dict:
        """Plain data, for result files and the key."""
        d = dataclasses.asdict(self)
        if d["precision"] == "float32":
            del d["precision"]  # the default leaves the keys of float32 recipes as they were
        if not d["compiled"]:
            del d["compiled"]  # likewise for eager recipes
        d["phases"] = [dict(epochs=p.epochs, lr=p.lr, terms=[_describe_term(t) for t in p.terms]) for p in self.phases]
        return d

    def key(self) -> str:
        blob = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_description(cls, d: dict) -> "Recipe":
        types = {t.__name__: t for t in T.TERM_TYPES}
        phases = tuple(Phase(p["epochs"], p["lr"], tuple(types[t["type"]](**{k: v for k, v in t.items()
                                                                               if k != "type"})
                                                         for t in p["terms"])) for p in d["phases"])
        return cls(**{**d, "hidden": tuple(d["hidden"]), "phases": phases})
