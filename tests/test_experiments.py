"""Experiment runner (cached results with provenance), summary table and command line."""
import json
import os
import subprocess
import sys

import pytest

from cubelib import data, experiments, summary, train
from cubelib.train import Phase, TrainConfig

TINY = experiments.Experiment(
    name="tiny", data=data.DatasetConfig(n_train=24, n_test=8, order=1),
    train=TrainConfig(hidden=(8, 8), phases=(Phase(2, 1e-3, ("E0", "E1")), Phase(1, 1e-4, ("E0", "E1"))),
                      batches=2, eval_every=1))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CUBELIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CUBELIB_RESULTS", str(tmp_path / "results"))
    return tmp_path


def test_run_writes_a_result_with_provenance_and_reuses_it(env, monkeypatch):
    res = experiments.run(TINY, progress=False)
    path = TINY.path()
    assert path.exists() and path.parent == env / "results"
    stored = json.loads(path.read_text())
    assert stored["metrics"]["e_test"] == res["metrics"]["e_test"] > 0
    assert len(stored["metrics"]["e_test_per_output"]) == 9
    for field in ("git_commit", "device", "torch", "train_seconds", "date"):
        assert field in stored["provenance"]
    assert stored["curves"]["epoch"] == [1, 2, 3]

    def boom(*a, **k):
        raise AssertionError("should not train again")
    monkeypatch.setattr(train, "train", boom)
    assert experiments.run(TINY, progress=False)["metrics"] == res["metrics"]


def test_corrupt_or_stale_result_is_recomputed(env):
    experiments.run(TINY, progress=False)
    path = TINY.path()
    path.write_text("{ not json")
    with pytest.warns(UserWarning, match="unreadable"):
        assert experiments.run(TINY, progress=False)["metrics"]["e_test"] > 0
    stored = json.loads(path.read_text())
    stored["key"] = "0" * 16
    path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="stale"):
        experiments.run(TINY, progress=False)
    assert json.loads(path.read_text())["key"] == TINY.key()


def test_time_limit_stops_and_a_later_call_resumes(env):
    assert experiments.run(TINY, progress=False, time_limit=0.0) is None
    ck = data.default_cache_dir() / "checkpoints" / f"tiny-{TINY.key()}.pt"
    assert ck.exists()
    assert experiments.run(TINY, progress=False)["curves"]["epoch"] == [1, 2, 3]


def test_presets_and_bad_names():
    exps = experiments.accuracy_experiments("paper")
    assert [e.train.hidden[0] for e in exps[::2]] == [256, 512, 1024, 2048]
    e = experiments.accuracy_experiment("paper", "first", 2048)
    assert e.train.epochs == 2000 and e.train.phases[-1].epochs == 50 and e.train.batches == 42
    assert e.data.n_train == 97020 and e.train.phases[0].terms == ("E0", "E1")
    with pytest.raises(ValueError, match="unknown method"):
        experiments.accuracy_experiment("quick", "second-ish", 64)
    with pytest.raises(ValueError, match="unknown preset"):
        experiments.accuracy_experiments("huge")


def test_summary_without_compute_reports_missing(env):
    rows = summary.rows("smoke", compute=False)
    acc = [r for r in rows if r["chapter"] == "accuracy"]
    assert acc and all(r["ours"] is None for r in acc)
    assert rows[0]["ours"] == 28
    assert "not computed" in summary.markdown(rows)


def _cli(*args, env_vars):
    return subprocess.run([sys.executable, "-m", "cubelib", *args], capture_output=True, text=True,
                          env={**os.environ, **env_vars}, timeout=600)


def test_command_line(env):
    env_vars = {"CUBELIB_CACHE": str(env / "cache"), "CUBELIB_RESULTS": str(env / "results")}
    out = _cli("run", "accuracy", "--preset", "smoke", env_vars=env_vars)
    assert out.returncode == 0, out.stderr
    assert "accuracy-smoke-first-L16: e_train" in out.stdout
    out = _cli("summary", "--preset", "smoke", "--no-compute", env_vars=env_vars)
    rows = json.loads(out.stdout)
    assert any(r["quantity"].startswith("test e (%), first") and r["ours"] is not None for r in rows)
    bad = _cli("run", "accuracy", "--preset", "smoke", "--device", "tpu", env_vars=env_vars)
    assert bad.returncode != 0 and "--device must be" in bad.stderr
    bad = _cli("run", "accuracy", "--preset", "giant", env_vars=env_vars)
    assert bad.returncode != 0 and "invalid choice: 'giant'" in bad.stderr


def test_force_retrains_instead_of_reloading_the_checkpoint(env, monkeypatch):
    experiments.run(TINY, progress=False)
    calls = []
    real = train.train

    def spy(*a, **k):
        res = real(*a, **k)
        calls.append(res.resumed_from)
        return res
    monkeypatch.setattr(train, "train", spy)
    experiments.run(TINY, progress=False, force=True)
    assert calls == [0]  # trained from scratch, not resumed from the finished checkpoint


def test_result_made_by_other_training_code_is_flagged(env):
    experiments.run(TINY, progress=False)
    path = TINY.path()
    stored = json.loads(path.read_text())
    stored["provenance"]["source_hash"] = "000000000000"
    path.write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match="made by other training code"):
        assert experiments.load(TINY) is not None


def test_small_models_are_stored_and_reloaded(env, monkeypatch):
    res = experiments.run(TINY, progress=False)
    weights = TINY.path().with_suffix(".pt")
    assert weights.exists()

    def boom(*a, **k):
        raise AssertionError("should not train again")
    monkeypatch.setattr(train, "train", boom)
    net = experiments.model(TINY)
    ds = data.load(TINY.data, progress=False)
    e = train.error_e(net, ds.test.image.reshape(8, -1).float(), ds.test.target.float(), ds.norms.D_i)
    assert abs(e.mean().item() - res["metrics"]["e_test"]) < 1e-9


def test_robustness_presets():
    e = experiments.robust_experiment("paper", "robust-tradeoff", 2048)
    assert e.train.phases[0].terms == ("E0", "E1", "R_low", "R_mid") and e.train.epochs == 2001
    assert e.train.phases[-1].terms == ("E0", "E1")
    assert e.parent.train.phases == e.train.phases[:2]
    deep = experiments.robust_experiment("paper", "robust-deep", 2048)
    assert deep.train.hidden == (2048,) * 5 + (128,) and deep.train.batches == 84
    assert deep.train.epochs == 2200 and "R_high" in deep.train.phases[0].terms
    n_weights = sum(a * b + b for a, b in zip((1681,) + deep.train.hidden, deep.train.hidden + (9,)))
    assert 20e6 < n_weights < 21e6  # "the network has 20 million weights"
    names = [x.name for x in experiments.robust_experiments("quick")]
    assert len(names) == len(set(names))
    assert names.index("robustness-quick-robust-L128") < names.index("robustness-quick-robust-tradeoff-L128")
    g = experiments.robust_experiment("quick", "gaussian", 128, 0.055)
    assert g.train.noise_sigma == 0.055 and g.train.phases[0].terms == ("E0",)
    j = experiments.robust_experiment("quick", "jacobian", 128, 1e-3)
    assert j.train.jacobian_weight == 1e-3 and "J_low" in j.train.phases[0].terms
    assert len({g.key(), j.key(), e.key()}) == 3
    with pytest.raises(ValueError, match="needs strength > 0"):
        experiments.robust_experiment("quick", "gaussian", 128)
    with pytest.raises(ValueError, match="unknown method"):
        experiments.robust_experiment("quick", "mixup", 128)
    with pytest.raises(ValueError, match="takes no strength"):
        experiments.robust_experiment("quick", "robust", 128, 0.1)
    with pytest.raises(ValueError, match="strict prefix"):
        experiments.Experiment(name="x", data=TINY.data, train=TINY.train, parent=TINY)


def test_child_continues_from_its_parents_checkpoint_bit_exactly(env, monkeypatch):
    """A trade-off run (parent + one more phase) from the parent's final checkpoint equals
    the same run trained from scratch, and does not retrain the parent's epochs."""
    robust = ("E0", "E1", "R_low")
    parent = experiments.Experiment(name="parent", data=TINY.data, train=TrainConfig(
        hidden=(8, 8), phases=(Phase(2, 1e-3, robust),), batches=2, eval_every=1))
    child_cfg = TrainConfig(hidden=(8, 8), phases=(Phase(2, 1e-3, robust), Phase(1, 1e-4, ("E0", "E1"))),
                            batches=2, eval_every=1)
    child = experiments.Experiment(name="child", data=TINY.data, train=child_cfg, parent=parent)
    alone = experiments.Experiment(name="alone", data=TINY.data, train=child_cfg)
    ref = experiments.run(alone, progress=False)
    experiments.run(parent, progress=False)
    epochs_trained = []
    real_train = train.train

    def counting(cfg, ds, **kw):
        res = real_train(cfg, ds, **kw)
        epochs_trained.append(res.epochs_done - res.resumed_from)
        return res
    monkeypatch.setattr(train, "train", counting)
    got = experiments.run(child, progress=False)
    assert epochs_trained == [1]
    assert got["metrics"]["e_test"] == ref["metrics"]["e_test"]
    assert got["curves"]["e_train"] == ref["curves"]["e_train"]
    for split in ("train", "test"):
        assert got["metrics"][f"v_max_{split}"] == ref["metrics"][f"v_max_{split}"] > 0


def test_summary_markdown_keeps_one_row_per_quantity():
    rows = [{"quantity": "a || b", "paper": 1, "ours": None, "preset": "quick", "chapter": "x"}]
    md = summary.markdown(rows).splitlines()
    assert len(md) == 3 and md[2].count(" | ") == 4 and "a \\|\\| b" in md[2]
