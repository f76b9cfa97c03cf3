"""The result store (immutable results with provenance, manifest, recorded code equivalences),
the chapters' experiments built from presets, the summary table and the command line."""
import dataclasses
import json
import math
import os
import subprocess
import sys
import types

import pytest
import torch

from cubelib import analyses, claims, data, evaluate, experiments, paper, presets, store, summary, train
from cubelib import terms as T
from cubelib.experiments import Robust
from cubelib.recipes import Phase, Recipe

E0, E1 = T.E0(), T.E1()
TINY_DATA = data.DatasetConfig(n_train=24, n_test=8, order=1)
TINY = store.Experiment(name="tiny", preset="smoke", chapter="accuracy", data=TINY_DATA,
                        recipe=Recipe(hidden=(8, 8), phases=(Phase(2, 1e-3, (E0, E1)), Phase(1, 1e-4, (E0, E1))),
                                      batches=2, eval_every=1))


def no_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("should not train again")
    monkeypatch.setattr(train, "train", boom)


def test_run_writes_a_result_with_provenance_and_reuses_it(env, monkeypatch):
    res = store.run(TINY, progress=False)
    path = TINY.path()
    assert path.exists() and path.parent == env / "results" / "smoke"
    stored = json.loads(path.read_text())
    assert stored["metrics"]["e_test"] == res.e_test and len(stored["metrics"]["e_test_per_output"]) == 9
    for field in ("code_version", "git_commit", "device", "torch", "train_seconds", "date"):
        assert field in stored["provenance"]
    assert stored["curves"]["epoch"] == [1, 2, 3]
    entry = store.manifest("smoke")[TINY.key()]
    assert entry["name"] == "tiny" and entry["code_version"] == store.code_version()
    assert set(entry["sha256"]) == {path.name, TINY.weights_path().name}
    no_training(monkeypatch)
    assert store.run(TINY, progress=False).metrics == res.metrics


def test_results_are_immutable_and_bad_files_are_refused_not_rewritten(env):
    store.run(TINY, progress=False)
    path = TINY.path()
    with pytest.raises(FileExistsError, match="immutable"):
        store.write_json(path, {})
    good = path.read_text()
    path.write_text("{ not json")
    with pytest.raises(ValueError, match="unreadable"):
        store.run(TINY, progress=False)
    assert store.status([TINY])["corrupt"] == ["tiny"]
    stored = json.loads(good)
    stored["key"] = "0" * 16
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="another config"):
        store.load(TINY)
    assert json.loads(path.read_text())["key"] == "0" * 16  # left as it was


def test_a_result_of_other_code_is_used_only_after_a_recorded_equivalence(env):
    store.run(TINY, progress=False)
    path = TINY.path()
    stored = json.loads(path.read_text())
    stored["provenance"]["code_version"] = "000000000000"
    path.write_text(json.dumps(stored))
    with pytest.raises(store.StaleResult, match="not recorded as equivalent"):
        store.load(TINY)
    assert store.status([TINY])["stale"] == ["tiny"]
    other = dataclasses.replace(TINY, name="never-trained")
    assert store.stored([TINY, other]) == {}  # a stale result is left out like a missing one
    store.record_equivalence("000000000000", "a test")
    assert store.load(TINY).e_test == stored["metrics"]["e_test"]
    assert list(store.stored([TINY, other])) == ["tiny"]
    # equivalence is transitive: a later version equivalent to the current one accepts it too
    assert {"000000000000", store.code_version()} <= store.accepted_versions()


def test_status_lists_missing_and_orphaned_and_the_checksum_guards_edits(env):
    other = store.Experiment(name="other", preset="smoke", chapter="accuracy", data=TINY_DATA,
                             recipe=Recipe(hidden=(8,), phases=(Phase(1, 1e-3, (E0,)),), batches=2))
    store.run(TINY, progress=False)
    (env / "results" / "smoke" / "stray-0000.json").write_text("{}")
    found = store.status([TINY, other])
    assert found["ok"] == ["tiny"] and found["missing"] == ["other"] and found["orphaned"] == ["smoke/stray-0000.json"]
    raw = json.loads(TINY.path().read_text())
    raw["metrics"]["e_test"] = 0.0  # an edit by hand: valid JSON, but not what was written
    TINY.path().write_text(json.dumps(raw))
    assert store.status([TINY])["corrupt"] == ["tiny"]


def test_no_train_mode_refuses_to_train(env, monkeypatch):
    monkeypatch.setenv("CUBELIB_NO_TRAIN", "1")
    with pytest.raises(store.TrainingDisabled, match="CUBELIB_NO_TRAIN"):
        store.run(TINY, progress=False)


def test_a_network_trained_by_another_process_is_refused_not_trained_twice(env):
    import fcntl
    lock = TINY.checkpoint_path().with_name(TINY.checkpoint_path().name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as other:  # another open file: what a second process would hold
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(store.Busy, match="tiny is being trained by another process"):
            store.run(TINY, progress=False)
        with pytest.raises(store.Busy):
            store.compute(TINY, progress=False)  # a sweep's worker takes the same lock
        assert not TINY.checkpoint_path().exists() and not TINY.path().exists()
        env_vars = {"CUBELIB_CACHE": str(env / "cache"), "CUBELIB_RESULTS": str(env / "results")}
        exps = experiments.accuracy_experiments(presets.get("smoke"))
        held = exps[0]
        lock2 = held.checkpoint_path().with_name(held.checkpoint_path().name + ".lock")
        with open(lock2, "w") as other2:
            fcntl.flock(other2, fcntl.LOCK_EX)
            out = _cli("run", "accuracy", "--preset", "smoke", env_vars=env_vars)
            busy = _cli("summary", "--preset", "smoke", env_vars=env_vars)
        assert busy.returncode != 0 and "is being trained by another process" in busy.stderr
        assert "--no-compute prints what is stored" in busy.stderr and "Traceback" not in busy.stderr
        assert out.returncode == 0, out.stderr
        assert f"{held.name}: skipped, {held.name} is being trained by another process" in out.stdout
        assert all(f"{e.name}: e_train" in out.stdout for e in exps[1:] if e.parent is None)
    assert store.run(TINY, progress=False).curves["epoch"] == [1, 2, 3]  # released: trains now
    assert not store._HELD  # run took the lock again inside compute (re-entrant) and let it go
    with open(lock, "w") as after:
        fcntl.flock(after, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises BlockingIOError otherwise


def test_a_child_whose_parent_is_being_trained_waits_for_it(env):
    """A trade-off child without its parent's final checkpoint would train the parent's epochs
    again: while another process trains the parent, the child is Busy too."""
    import fcntl
    p = presets.get("smoke")
    child = experiments.robust(p, Robust(tradeoff=True), p.widths[0])
    parent = child.parent
    lock = parent.checkpoint_path().with_name(parent.checkpoint_path().name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(store.Busy, match=f"{child.name} continues from {parent.name}'s final checkpoint"):
            store.run(child, progress=False)
    assert not child.checkpoint_path().exists() and not child.path().exists()


def test_time_limit_stops_and_a_later_call_resumes(env):
    assert store.run(TINY, progress=False, time_limit=0.0) is None
    assert TINY.checkpoint_path().exists()
    assert store.run(TINY, progress=False).curves["epoch"] == [1, 2, 3]


def test_stored_weights_reproduce_the_stored_error(env, monkeypatch):
    res = store.run(TINY, progress=False)
    no_training(monkeypatch)
    net = store.model(TINY)
    ds = data.load(TINY.data, progress=False)
    e = evaluate.error_e(net, ds.test.image.reshape(8, -1).float(), ds.test.target.float(), ds.norms.D_i)
    assert abs(e.mean().item() - res.e_test) < 1e-9
    missing = store.Experiment(name="none", preset="smoke", chapter="x", data=TINY_DATA,
                               recipe=Recipe(hidden=(4,), batches=2))
    with pytest.raises(FileNotFoundError, match="run it first"):
        store.model(missing)


def test_presets_are_validated_and_overridable():
    p = presets.get("quick", widths=(256,), epochs=300)
    assert p.widths == (256,) and p.epochs == 300 and presets.get("quick").epochs == 150
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        presets.get("huge")
    with pytest.raises(ValueError, match="unknown preset size.*widthz"):
        presets.get("quick", widthz=(1,))
    with pytest.raises(ValueError, match="low_lr_epochs"):
        presets.get("quick", epochs=10)
    with pytest.raises(ValueError, match="sigmas must be"):
        presets.get("quick", sigmas=(2.0,))
    with pytest.raises(ValueError, match="widths must be"):
        presets.get("quick", widths=())
    with pytest.raises(ValueError, match=r"e2_weight must be a number in \(0, 1\] or None"):
        presets.get("quick", e2_weight=0.0)
    with pytest.raises(ValueError, match="seeds must be an integer >= 1"):
        presets.get("quick", seeds=0)
    with pytest.raises(ValueError, match=r"derivative_epochs \(15\) must be in \(15, 150\] or None"):
        presets.get("quick", derivative_epochs=15)


def test_paper_small_shortens_derivative_training_only_and_names_it():
    """paper-small: networks trained on derivatives get derivative_epochs, named -e<epochs>;
    conventional and Gaussian training keep the paper's 2000 epochs."""
    p = presets.get("paper-small")
    first = experiments.accuracy(p, "first", 256)
    assert first.name == "accuracy-paper-small-first-e500-L256"
    assert [(ph.epochs, ph.lr) for ph in first.recipe.phases] == [(488, 1e-3), (12, 1e-4)]
    assert experiments.accuracy(p, "conventional", 256).recipe.epochs == 2000
    assert experiments.gaussian(p, 0.055, 256).recipe.epochs == 2000  # Table 5
    g = experiments.gaussian_sweep(p, 0.055)  # the sweep, compared with the robust and Jacobian networks
    assert g.name == "robustness-paper-small-gaussian-0.055-e500-L256" and g.recipe.epochs == 500
    assert experiments.gaussian_sweep("quick", 0.055) == experiments.gaussian("quick", 0.055, 128)
    j = experiments.jacobian(p, 1.0, 256)
    assert j.name == "robustness-paper-small-jacobian-1-e500-L256" and j.recipe.epochs == 500
    t = experiments.robust(p, experiments.Robust(tradeoff=True), 256)
    assert t.recipe.epochs == 501 and t.parent.name == "robustness-paper-small-robust-e500-L256"
    # conventional training on the shortened schedule too (the price of the schedule, the gain at
    # equal epochs), only where a preset shortens; the chapter's study trains exactly these
    from cubelib.studies import accuracy as A
    short = experiments.accuracy(p, "conventional", 256, epochs=500)
    assert short.name == "accuracy-paper-small-conventional-e500-L256"
    assert short.recipe.phases == tuple(dataclasses.replace(ph, terms=(E0,)) for ph in first.recipe.phases)
    for q in ("paper-small", "quick", "paper"):
        assert sorted(e.name for e in A._experiments(presets.get(q)).values()) == \
            sorted(e.name for e in experiments.accuracy_experiments(q))
    assert short in experiments.accuracy_experiments(p) and len(experiments.accuracy_experiments("quick")) == 4
    # the paper preset keeps the paper's schedule everywhere
    assert experiments.accuracy("paper", "first", 256).recipe.epochs == 2000


def test_accuracy_experiments_follow_the_paper():
    exps = experiments.accuracy_experiments("paper")
    assert [e.recipe.hidden[0] for e in exps[::2]] == [256, 512, 1024, 2048]
    e = experiments.accuracy(presets.get("paper"), "first", 2048)
    assert e.recipe.epochs == 2000 and e.recipe.phases[-1].epochs == 50 and e.recipe.batches == 42
    assert e.data.n_train == 97020 and e.recipe.phases[0].terms == (E0, E1)
    second = experiments.accuracy("paper", "second", 256)
    assert [(p.epochs, p.lr) for p in second.recipe.phases] == [(1950, 1e-3), (25, 1e-4), (25, 1e-5)]
    assert second.data.order == 2 and T.E2() not in second.recipe.phases[-1].terms
    with pytest.raises(ValueError, match="unknown method"):
        experiments.accuracy("quick", "second-ish", 64)
    with pytest.raises(ValueError, match="width must be"):
        experiments.accuracy("quick", "first", 0)
    with pytest.raises(ValueError, match="epochs must be"):
        experiments.accuracy("quick", "first", 64, epochs=2)
    # the working second-order method: the paper's schedule with E2 x w, named as a deviation
    w = experiments.accuracy("quick", "second", 128, seed=2, e2_weight=0.01)
    assert w.name == "accuracy-quick-second-w0.01-s2-L128" and w.chapter == "second_order"
    assert [t.weight for p in w.recipe.phases for t in p.terms if isinstance(t, T.E2)] == [0.01, 0.01]
    assert [(p.epochs, p.lr) for p in w.recipe.phases] == [(p.epochs, p.lr) for p in
                                                           experiments.accuracy("quick", "second", 128).recipe.phases]
    with pytest.raises(ValueError, match="e2_weight applies to the second-derivative methods only"):
        experiments.accuracy("quick", "first", 128, e2_weight=0.01)
    names = [e.name for e in experiments.second_order_experiments("quick")]
    for s in (1, 2):
        assert f"accuracy-quick-first-s{s}-L128" in names and f"accuracy-quick-second-w0.01-s{s}-L128" in names


def test_robustness_experiments_follow_the_paper():
    e = experiments.robust("paper", Robust(tradeoff=True), 2048)
    assert e.recipe.phases[0].terms == (E0, E1, T.Robust("low"), T.Robust("mid")) and e.recipe.epochs == 2001
    assert e.recipe.phases[-1].terms == (E0, E1) and e.parent.recipe.phases == e.recipe.phases[:2]
    deep = experiments.robust("paper", Robust(deep=True), 2048)
    assert deep.recipe.hidden == (2048,) * 5 + (128,) and deep.recipe.batches == 84
    assert deep.recipe.epochs == 2200 and T.Robust("high") in deep.recipe.phases[0].terms
    n_weights = sum(a * b + b for a, b in zip((1681,) + deep.recipe.hidden, deep.recipe.hidden + (9,)))
    assert 20e6 < n_weights < 21e6  # "the network has 20 million weights"
    names = [x.name for x in experiments.robust_experiments("quick")]
    assert len(names) == len(set(names)) == 25
    assert names.index("robustness-quick-robust-L128") < names.index("robustness-quick-robust-tradeoff-L128")
    g = experiments.gaussian("quick", 0.055, 128)
    assert g.recipe.phases[0].terms == (T.E0(noise=0.055),) and g.data.order == 1
    j = experiments.jacobian("quick", 1e-3, 128)
    assert T.Jacobian("low", 1e-3) in j.recipe.phases[0].terms
    assert len({g.key(), j.key(), e.key()}) == 3
    with pytest.raises(ValueError, match="strength"):
        experiments.gaussian("quick", 0, 128)
    with pytest.raises(ValueError, match="strict prefix"):
        store.Experiment(name="x", preset="smoke", chapter="x", data=TINY.data, recipe=TINY.recipe, parent=TINY)


def test_every_quick_network_of_the_book_is_distinct():
    exps = experiments.all_experiments("quick")
    # 101 of the chapters (90 of the paper's recipes and the baselines' sweeps, 4 of E2 x 0.01,
    # 2 more seeds of first-derivative training, 2 more of the paper's E2 and 3 of the author's
    # n_ij reading), 13 more of the precision comparison (5 of its 18 are the chapters')
    assert len(exps) == len({e.key() for e in exps}) == 101 + 13
    bf16 = experiments.accuracy("quick", "first", 128, seed=1, precision="bfloat16")
    assert bf16.name == "accuracy-quick-first-s1-bf16-L128" and bf16.recipe.precision == "bfloat16"
    assert experiments.accuracy("quick", "first", 128).name == "accuracy-quick-first-L128"


def test_best_is_one_rule():
    scores = {"a": (5.0, 30.0), "b": (9.0, 20.0), "c": (3.0, 40.0)}
    assert analyses.best(scores) == "b"
    assert analyses.best(scores, e_limit=6.0) == "a"
    assert analyses.best(scores, e_limit=1.0) == "c"  # none qualifies: the most accurate


def test_the_device_reads_as_english_also_in_results_stored_before():
    """Stored provenances say "1 threads" (files are never rewritten); the text says "1 thread",
    and new results store it so."""
    old = {"device": "CPU (x86_64, 1 threads)"}
    assert store.device_text(old) == "CPU (x86_64, 1 thread)"
    for kept in ("CPU (x86_64, 11 threads)", "CPU (x86_64, 2 threads)", "NVIDIA H200"):
        assert store.device_text({"device": kept}) == kept
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert store.provenance("cpu", 1.0)["device"].endswith(", 1 thread)")
        torch.set_num_threads(2)
        assert store.provenance("cpu", 1.0)["device"].endswith(", 2 threads)")
    finally:
        torch.set_num_threads(threads)


def test_at_error_interpolates_a_sweep_on_the_log_log_plane():
    """v = 100 / e is a straight line on the plane's log-log axes: interpolation between its
    points is exact; outside the errors a sweep spans there is no answer; where several
    segments bracket the error, the lowest."""
    line = [(1.0, 100.0), (4.0, 25.0), (8.0, 12.5)]
    for e in (1.0, 2.0, 3.0, 4.0, 5.5, 8.0):
        v, i = analyses.at_error(line, e)
        assert math.isclose(v, 100 / e, rel_tol=1e-12) and i == (0 if e <= 4 else 1)
    assert analyses.at_error(line, 0.5) is None and analyses.at_error(line, 9.0) is None
    assert analyses.at_error([(1.0, 100.0), (4.0, 25.0), (2.0, 10.0)], 2.0) == (pytest.approx(10.0), 1)  # the curve turns back
    assert analyses.at_error([(1.0, 100.0), (2.0, 30.0), (2.0, 20.0)], 2.0) == (20.0, 1)  # a vertical segment


def test_robust_training_against_a_sweep_at_its_best_and_at_equal_error():
    """A constructed sweep on the line v = 100 / e (exact on the plane's log-log axes): the
    paper's comparison takes its best (lowest v_max) network, the equal-error row its curve at
    robust training's own error; outside the errors the sweep spans there is no number."""
    from cubelib.studies import robustness as R

    def net(e, v, epochs=2000):
        return store.Result("n", "k", {"e_test": e, "v_max_test": v}, {}, {},
                            {"recipe": {"phases": [{"epochs": epochs}]}})
    sweep = {0.1: net(2.0, 50.0), 0.2: net(5.0, 20.0), 0.4: net(10.0, 10.0)}
    best, curve = R._versus_rows("gaussian", net(4.0, 20.0), sweep, "paper", 256)
    assert (best.id, curve.id) == ("robust-vs-gaussian", "robust-vs-gaussian-at-e")
    # the best Gaussian network within the paper's sigmas (<= 0.17): only sigma = 0.1 here
    assert best.ours == 50.0 / 20.0 and best.paper == paper.ROBUST_GAIN_OVER_BASELINES == 2.3
    assert curve.ours == pytest.approx(25.0 / 20.0, rel=1e-12) and curve.paper is None
    # past paper ** 0.8, but at a smaller network than the paper's: at most in direction
    assert claims.verdict(curve) == claims.OURS_ONLY and claims.verdict(best) == claims.DIRECTION
    best, curve = R._versus_rows("jacobian", net(1.0, 20.0), sweep, "paper", 256)
    assert best.ours == 10.0 / 20.0 and claims.verdict(best) == claims.REVERSED_SMALL  # no range: all of it
    assert curve is None  # outside the sweep's errors
    assert R._versus_rows("gaussian", net(4.0, 20.0), {0.4: net(10.0, 10.0)}, "paper", 256)[0] is None


def test_the_tolerance_text_quotes_the_measured_seed_spread(monkeypatch):
    """Robust training's v_max over its stored seeds: max / min - 1, quoted beside the 5 %
    tolerance; with fewer than two seeds stored, no spread is quoted."""
    from cubelib.studies import robustness as R
    p = presets.get("quick")
    v = {0: 30.0, 1: 31.5, 2: 30.3}
    names = {experiments.robust(p, Robust(), max(p.widths), k).name: k for k in experiments.PRECISION_SEEDS}

    def stored(exps, root=None):
        return {e.name: types.SimpleNamespace(v_max_test=v[names[e.name]]) for e in exps if names[e.name] in v}
    monkeypatch.setattr(store, "stored", stored)
    assert R.seed_spread(p) == pytest.approx(0.05)
    assert R._tolerance_text(p).endswith("moves by 5.0 % over 3 seeds at `quick`)")
    del v[1], v[2]
    assert R.seed_spread(p) is None and R._tolerance_text(p).endswith("(the largest seed-to-seed spread measured, "
                                                                      "of test errors)")


def test_the_no_effect_tolerance_is_the_largest_seed_spread_measured():
    """NO_EFFECT is stated as the largest seed-to-seed spread of the stored quick networks
    (max / min over PRECISION_SEEDS of the test error, and of robust training's v_max): the
    results must bear the constant out."""
    p = presets.get("quick")
    W = max(p.widths)
    spreads = {}
    for name, exp in (("conventional", lambda k: experiments.accuracy(p, "conventional", W, k)),
                      ("first", lambda k: experiments.accuracy(p, "first", W, k)),
                      ("robust", lambda k: experiments.robust(p, Robust(), W, k))):
        found = [store.load(exp(k), root=store.ROOT / "results") for k in experiments.PRECISION_SEEDS]
        if any(r is None for r in found):
            pytest.skip("the quick seeds are not stored")
        for q in ("e_test", "v_max_test"):
            spreads[name, q] = max(r.metrics[q] for r in found) / min(r.metrics[q] for r in found)
    errors = max(v for (name, q), v in spreads.items() if q == "e_test")
    assert claims.NO_EFFECT - 0.01 <= errors <= claims.NO_EFFECT + 0.005  # "the largest ... of test errors"
    assert spreads["robust", "v_max_test"] < errors


def test_summary_without_compute_reports_missing(env):
    rows = summary.rows("smoke", compute=False)
    acc = [r for r in rows if r.id == "accuracy"]
    assert acc and all(r.ours is None for r in acc)
    assert rows[0].id == "resolution" and rows[0].ours == 28
    assert claims.verdict(acc[0]) == claims.NOT_MEASURED
    assert claims.NOT_MEASURED in summary.markdown(rows)



def test_summary_shows_the_stored_claims_of_a_chapter_still_training(env):
    """Without compute, a robustness chapter whose networks are partly stored shows the claims
    those networks allow (the same rows the whole chapter gives once all are stored) and one
    "not measured" row for the rest."""
    from cubelib.studies import robustness as R
    p = presets.get("smoke")
    for t in (3, 4, 5):
        store.run(R.TABLE_NETWORK[t](p, p.sweep_width), progress=False)

    def shown():
        with store.training(False):
            return summary.chapter_claims("robustness", "smoke", compute=False)
    tables = ["table3-e", "table3-vmax", "table4-vmax", "table4-e", "table4-vsen", "table4-vinv", "tradeoff-gain",
              "table5-vmax", "table5-e", "table5-vsen", "table5-vinv"]
    # smoke's sigma sweep is Table 5's network alone: that sweep is stored whole, its claim shown
    assert [e.name for e in R._sweep_experiments(p, "gaussian").values()] == [R.TABLE_NETWORK[5](p, p.sweep_width).name]
    rows = shown()
    # (smoke's one-point sweeps span no error range: no equal-error rows)
    assert [c.id for c in rows] == tables + ["gaussian-takeover", "robust-vs-gaussian", "robustness"]
    assert rows[-1].ours is None and rows[-1].claim == "robustness chapter, the rest"
    assert all(c.ours is not None for c in rows[:-1])
    for e in R._sweep_experiments(p, "jacobian").values():  # the other sweep stored whole: its claim joins
        store.run(e, progress=False)
    assert [c.id for c in shown()] == tables + ["gaussian-takeover", "robust-vs-gaussian", "robust-vs-jacobian",
                                                "robustness"]
    partial = shown()[:-1]
    whole = {c.id: c for c in R.rows(R.study("smoke"))}  # trains the rest
    assert all(whole[c.id] == c for c in partial)
    assert [c.id for c in shown()] == list(whole)  # all stored: the whole chapter, no "not measured"

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
    assert any(r["id"] == "table2-e" and r["ours"] is not None and r["verdict"] for r in rows)
    out = _cli("status", "--preset", "smoke", env_vars=env_vars)
    assert out.returncode == 0 and "ok: 2" in out.stdout and "missing:" in out.stdout
    bad = _cli("run", "accuracy", "--preset", "smoke", "--device", "tpu", env_vars=env_vars)
    assert bad.returncode != 0 and "--device must be" in bad.stderr
    bad = _cli("run", "accuracy", "--preset", "giant", env_vars=env_vars)
    assert bad.returncode != 0 and "invalid choice: 'giant'" in bad.stderr
    bad = _cli("run", "accuracy", "--preset", "smoke", "--set", "widths=(0,)", env_vars=env_vars)
    assert bad.returncode != 0 and "widths must be" in bad.stderr
    bad = _cli("run", "accuracy", "--preset", "smoke", "--set", "widthz=8", env_vars=env_vars)
    assert bad.returncode != 0 and "unknown preset size(s) widthz" in bad.stderr
    out = _cli("run", "accuracy", "--preset", "smoke", "--set", "widths=(8,)", "--only", "first", env_vars=env_vars)
    assert out.returncode == 0 and "accuracy-smoke-first-L8: e_train" in out.stdout


def test_child_continues_from_its_parents_checkpoint_bit_exactly(env, monkeypatch):
    """A trade-off run (parent + one more phase) from the parent's final checkpoint equals
    the same run trained from scratch, and does not retrain the parent's epochs."""
    robust = (E0, E1, T.Robust("low"))
    parent_recipe = Recipe(hidden=(8, 8), phases=(Phase(2, 1e-3, robust),), batches=2, eval_every=1)
    child_recipe = Recipe(hidden=(8, 8), phases=(Phase(2, 1e-3, robust), Phase(1, 1e-4, (E0, E1))), batches=2,
                          eval_every=1)
    make = lambda name, recipe, parent=None: store.Experiment(name=name, preset="smoke", chapter="x", data=TINY_DATA,
                                                              recipe=recipe, parent=parent)
    parent = make("parent", parent_recipe)
    child = make("child", child_recipe, parent)
    ref = store.run(make("alone", child_recipe), progress=False)
    store.run(parent, progress=False)
    epochs_trained = []
    real_train = train.train

    def counting(recipe, ds, **kw):
        res = real_train(recipe, ds, **kw)
        epochs_trained.append(res.epochs_done - res.resumed_from)
        return res
    monkeypatch.setattr(train, "train", counting)
    got = store.run(child, progress=False)
    assert epochs_trained == [1]
    assert got.metrics == ref.metrics and got.curves == ref.curves


def test_summary_markdown_keeps_one_row_per_claim():
    rows = [claims.Claim("x", "a || b", 1.0, "0.6M", None, "", "quick", "sec-x")]
    md = summary.markdown(rows).splitlines()
    assert len(md) == 3 and md[2].count(" | ") == 5 and "a \\|\\| b" in md[2]
    assert "{ref}`sec-x`" in md[2] and claims.NOT_MEASURED in md[2]


def _claim(paper, ours, kind="value", **kw):
    return claims.Claim("x", "x", paper, "0.6M", ours, "L = 128", "quick", "sec-x", kind=kind, **kw)


def test_verdicts_follow_the_stated_rules():
    V = claims.verdict
    # a value to reproduce: within a factor 1.25 either way
    assert V(_claim(28, 28)) == V(_claim(40, 32.4)) == claims.HOLDS
    assert V(_claim(40, 31.9)) == claims.FAILS_SMALL
    assert V(_claim(40, 31.9, smaller=False)) == claims.FAILS
    # an error: at most 1.25x the paper's, lower is always fine, except for a baseline
    assert V(_claim(1.04, 1.3, "error")) == V(_claim(1.04, 0.5, "error")) == claims.HOLDS
    assert V(_claim(1.04, 1.31, "error")) == claims.FAILS_SMALL
    assert V(_claim(2.17, 1.5, "error", baseline=True)) == claims.FAILS_SMALL  # a stronger baseline
    # a vulnerability: the share of the paper's drop below the null network's level, >= 0.8
    # (Table 3 at 0.6M: 21.1 against a null of 28.3 needs <= 22.54)
    t3 = dict(kind="vulnerability", null=28.3)
    assert V(_claim(21.1, 22.5, **t3)) == V(_claim(21.1, 15.0, **t3)) == claims.HOLDS
    assert V(_claim(21.1, 22.6, **t3)) == claims.FAILS_SMALL
    assert V(_claim(21.1, 24.7, **t3)) == claims.FAILS_SMALL  # the paper's own Gaussian baseline
    assert claims.compared(_claim(21.1, 24.7, **t3)) == "50 % of the drop below 28.3"
    # a baseline's vulnerability: its drop within a factor 1.25 of the paper's either way
    assert V(_claim(24.7, 24.0, baseline=True, **t3)) == claims.HOLDS
    assert V(_claim(24.7, 22.0, baseline=True, **t3)) == claims.FAILS_SMALL  # 1.75x the drop
    # a gain on a log scale: 6.1 needs 6.1 ** 0.8 = 4.24; above 1.05 it shows the direction
    assert V(_claim(6.1, 4.25, "gain", smaller=False)) == claims.HOLDS
    assert V(_claim(6.1, 4.2, "gain", smaller=False)) == V(_claim(1.22, 1.06, "gain")) == claims.DIRECTION
    assert V(_claim(6.1, 7.0, "gain")) == claims.DIRECTION  # a smaller network or schedule: not comparable in size
    assert V(_claim(1.22, 1.04, "gain")) == V(_claim(1.22, 0.96, "gain")) == claims.FAILS_SMALL
    # below 1 / 1.05 it shows the opposite effect
    assert V(_claim(9.3, 0.26, "gain")) == V(_claim(2.3, 0.95, "gain")) == claims.REVERSED_SMALL
    assert V(_claim(2.3, 0.95, "gain", smaller=False)) == claims.REVERSED
    # a qualitative claim: past the row's threshold, either way
    q = lambda paper, ours, better, **kw: _claim(paper, ours, "qualitative", better=better, **kw)
    assert V(q("flatter", 2.4, "higher", threshold=1.0)) == claims.DIRECTION
    assert V(q("flatter", 0.9, "higher", threshold=1.0)) == claims.FAILS_SMALL
    assert V(q("negligible", 0.06, "lower", threshold=10.0)) == claims.DIRECTION
    assert V(_claim(None, 0.7)) == claims.OURS_ONLY
    with pytest.raises(ValueError, match="kind"):
        _claim(1.0, 1.0, "more")
    with pytest.raises(ValueError, match="better"):
        _claim("text", 1.0, "qualitative")
    with pytest.raises(ValueError, match="qualitative"):
        _claim("text", 1.0)
    with pytest.raises(ValueError, match="null"):
        _claim(21.1, 22.0, "vulnerability")  # a vulnerability cannot be judged without the null's
    with pytest.raises(ValueError, match="not below the null"):
        _claim(29.0, 22.0, "vulnerability", null=28.3)


def test_no_rule_passes_a_network_that_ignores_its_input(monkeypatch):
    """Every claim of the intro (at quick, from the committed results) judged on the value a
    network ignoring its input scores: none holds, not even in direction.  Errors,
    vulnerabilities and gains must carry that value."""
    monkeypatch.setenv("CUBELIB_RESULTS", str(store.ROOT / "results"))
    monkeypatch.setenv("CUBELIB_NO_TRAIN", "1")
    rows = summary.rows("quick")
    judged = [c for c in rows if c.null is not None and c.paper is not None]
    assert len(judged) >= 20
    for c in rows:
        if c.kind in ("error", "vulnerability", "gain") and c.paper is not None:
            assert c.null is not None, c.id
    for c in judged:
        assert claims.verdict(claims.as_null(c)) not in claims.PASSING, (c.id, c.null)


def test_the_null_network_is_a_network_with_zero_input_gradient(tmp_path, monkeypatch):
    """analyses.null_network against an actual network that ignores its input (first layer
    zero, so it answers a constant) measured through autograd by robustness.measure, and e of
    the mean answer ~100 % (eq. 8 divides by the outputs' spread)."""
    from cubelib import data, evaluate, jets, robustness
    monkeypatch.setattr(store, "results_root", lambda: tmp_path)
    monkeypatch.delenv("CUBELIB_NO_TRAIN", raising=False)
    null = analyses.null_network("smoke", progress=False)
    ds = data.load(data.dataset_config("smoke", order=1), progress=False)
    model = jets.MLP((8,)).double()
    with torch.no_grad():
        model.weights[0].zero_()
    n = null["images"]
    got = robustness.measure(model, ds.test.image[:n].double(), data.oracle_gradients(ds.test, n))
    assert got["v_max"] == pytest.approx(null["v_max_test"], rel=1e-6)
    assert got["v_inv"] == pytest.approx(null["v_inv_test"], rel=1e-6) and got["v_sen"] == null["v_sen_test"] == 0
    assert 90 < null["e_test"] < 110
    mean = ds.train.target.mean(0)
    e = evaluate.error_e(lambda x: mean.expand(len(x), 9).float(), ds.test.image.flatten(1).float(),
                         ds.test.target.float(), ds.norms.D_i)
    assert e.mean().item() == pytest.approx(null["e_test"], rel=1e-4)


def test_the_paper_network_nearest_to_ours():
    assert [claims.nearest(w) for w in (16, 128, 256, 300, 4096)] == [256, 256, 256, 512, 2048]
    assert claims.smaller("quick", 256) and not claims.smaller("paper-small", 256)
    assert claims.smaller("paper-small", 128)
    # fewer epochs than the paper's 2000 is trained on less, and the table names them
    assert claims.smaller("paper-small", 256, 500) and not claims.smaller("paper-small", 256, 2000)
    assert claims.network("paper-small", 256, 500) == "L = 256, 500 epochs"
    assert claims.network("paper-small", 256, 2000) == claims.network("paper-small", 256) == "L = 256"
    assert claims.network("quick", 128, 150) == "L = 128"  # the preset's name says it is short


def test_parallel_runs_of_a_preset_keep_every_manifest_entry(env):
    """Processes storing results of one preset at once (sweeps) lose no manifest entry."""
    code = ("import sys; from cubelib import experiments, store\n"
            "for e in experiments.accuracy_experiments('smoke')[int(sys.argv[1])::2]:\n"
            "    for _ in range(300): store.add_to_manifest(e, {'provenance': store.read(e).provenance})\n")
    exps = experiments.accuracy_experiments("smoke")
    for e in exps:
        store.run(e, progress=False)
    store.manifest_path("smoke").unlink()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k)], env=os.environ.copy()) for k in (0, 1)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    assert set(store.manifest("smoke")) == {e.key() for e in exps}


def test_seed_verdict_separates_beats_ties_and_loses():
    seed_verdict = claims.over_seeds
    first = [2.47, 2.40, 2.52]
    assert seed_verdict(first, [2.10, 2.02, 2.20]) == "beats it with every seed"
    assert seed_verdict(first, [2.45, 2.30, 2.60]) == "ties with it within the seed spread"
    assert seed_verdict(first, [2.40, 2.60, 2.70]) == "ties with it within the seed spread"  # overlapping ranges
    assert seed_verdict(first, [2.53, 2.60, 3.0]) == "loses to it"


def test_the_transcribed_tables_give_the_gains_the_paper_states():
    """Tables 1, 2 and 6 as transcribed in cubelib.paper against §5.2's own words: at the
    largest network second-derivative training is 25x more accurate than conventional training
    and 4x more than first-derivative training."""
    from cubelib import paper
    from cubelib.studies.second_order import paper_gains
    g = paper_gains()
    assert round(g["paper_gain_conv_large"]) == paper.ACCURACY_GAIN_VS_CONVENTIONAL
    assert round(g["paper_gain_first_large"]) == paper.ACCURACY_GAIN_VS_FIRST
    assert abs(g["paper_gain_first_small"] - 0.17 / 0.112) < 1e-12  # the 0.6M network, test errors


def test_paper_tables_show_stored_results_and_checkpoints_and_train_nothing(env, monkeypatch):
    """`summary --tables`: the paper's values at its nearest network (Table 4 at 0.6M), ours
    only from stored results, a checkpoint's epoch for a network in progress."""
    conv = experiments.accuracy("smoke", "conventional", 16)
    first = experiments.accuracy("smoke", "first", 16)
    res = store.run(conv, progress=False)
    assert store.run(first, progress=False, time_limit=0.0) is None  # one epoch, checkpointed
    no_training(monkeypatch)
    rows = {(r[0], r[3]): r for r in summary.paper_tables("smoke").rows}
    assert rows["Table 1", "e"][1:6] == [conv.name, 4, "e", res.metrics["e_train"], res.metrics["e_test"]]
    assert rows["Table 2", "e"][2] == "checkpoint: epoch 1 of 4" and rows["Table 2", "e"][4] is None
    assert rows["Table 4", "e"][2] == "not trained" and rows["Table 4", "e"][6:] == ["0.6M (L = 256)", 3.66, 3.69]
    assert rows["Table 3", "v_max"][7:] == [None, 21.1]  # Table 3 gives test values only
    out = _cli("summary", "--preset", "smoke", "--tables",
               env_vars={"CUBELIB_CACHE": str(env / "cache"), "CUBELIB_RESULTS": str(env / "results")})
    assert out.returncode == 0 and f"| Table 1 | {conv.name} | 4 | e |" in out.stdout


def test_the_accuracy_chapter_describes_the_larger_presets_curves_from_their_medians():
    """The paragraphs on the paper-small networks of Tables 1-2, from constructed learning
    curves with known medians: around epoch 500 and before the drop to lr 1e-4 (conventional,
    2000 epochs), half-way and before the drop (first-derivative, 500 epochs)."""
    from cubelib.studies import accuracy

    def result(phases, test_at, e_train, e_test, seconds):
        epochs = list(range(0, sum(phases) + 1, 10))
        return store.Result(name="n", key="k", metrics={"e_train": e_train, "e_test": e_test, "n_weights": 6e5},
                            curves={"epoch": epochs, "e_test": [test_at(ep) for ep in epochs]},
                            provenance={"train_seconds": seconds, "device": "cpu", "git_commit": "0" * 40,
                                        "torch": "2", "date": "2026-12-01"},
                            config={"recipe": {"phases": [{"epochs": n} for n in phases]}})
    conv = result((1950, 50), lambda ep: 3.0 if ep <= 1000 else 1.5 if ep <= 1950 else 1.0, 0.7, 1.0, 7200)
    first = result((488, 12), lambda ep: 2.0 if ep < 300 else 0.8, 0.2, 0.4, 11000)
    n = accuracy._larger_numbers({("conventional", 256): conv, ("first", 256): first})
    assert (n["ps_conv_e500"], n["ps_conv_before"], n["ps_conv_switch"]) == (3.0, 1.5, 1950)
    assert (n["ps_first_half"], n["ps_first_half_epoch"], n["ps_first_before"]) == (2.0, 244, 0.8)
    assert n["ps_gain"] == 2.5 and n["ps_epoch_cost"] == f"{(11000 / 500) / (7200 / 2000):.1f}" == "6.1"
    conv_text, first_text = accuracy.larger_text(n).split("\n\n")
    assert "ends at 0.70 % on the training set and 1.00 % on the test set" in conv_text
    assert "around epoch 500 is 3.00 %" in conv_text and ("3.0 times the final one: unlike in the paper, the "
                                                          "remaining 1500 epochs divide the error by 3.0.") in conv_text
    assert "falling to 1.50 % before the drop to $10^{-4}$ at epoch 1950, and the last 50 epochs" in conv_text
    assert "costs 6.1 times as much wall-clock time per epoch, so it gets 500 epochs (3.1 hours" in first_text
    assert "gain of 2.5×" in first_text and "2.00 % around epoch 244 and 0.80 % before the drop" in first_text
    # only the first-derivative network stored: no cost or gain against a missing conventional one
    # conventional training on the same 500-epoch schedule: the price of the schedule, the gain at
    # equal epochs and the extrapolation it allows
    short = result((488, 12), lambda ep: 4.0, 1.5, 2.0, 3600)
    n = accuracy._larger_numbers({("conventional", 256): conv, ("first", 256): first, (accuracy.SHORT, 256): short})
    assert (n["ps_short_conv_ratio"], n["ps_equal_gain"], n["ps_first_extrapolated"]) == (2.0, 5.0, 0.2)
    first_text = accuracy.larger_text(n).split("\n\n")[1]
    assert ("same 500-epoch schedule ends at 2.00 %, so at equal epochs first-derivative training is 5.0× more "
            "accurate") in first_text and "gain of 2.5×" not in first_text
    assert "costs conventional training a factor 2.0 (2.00 % against 1.00 % after 2000 epochs)" in first_text
    # the two conventional runs took 3.6 and 7.2 s per epoch: the cost is a range, said so
    assert ("costs 3.1–6.1 times as much wall-clock time per epoch (against the two conventional runs, whose own "
            "times per epoch differ by 2.0×), so it gets 500 epochs") in first_text
    assert "would end near 0.20 %, against the paper's 0.17 %: an extrapolation" in first_text
    assert "not measured here" not in first_text and "still falling when the schedule ends: the test" in first_text
    # Tables 1-2 and the intro's gain: first-derivative training against the equal-epoch network
    larger = {("conventional", 256): conv, ("first", 256): first, (accuracy.SHORT, 256): short}
    p = presets.get("quick")
    own = {(m, w): conv if m == "conventional" else first for w in p.widths for m in accuracy.METHODS}
    t1, t2 = accuracy._tables(p, own, {w: 2.5 for w in p.widths}, larger)
    assert [r[0] for r in t1.rows if "paper-small" in r[0]] == ["L = 256, `paper-small`",
                                                                "L = 256, `paper-small`, 500 epochs"]
    ps, = [r for r in t2.rows if "paper-small" in r[0]]
    assert ps[0] == "L = 256, `paper-small`, 500 epochs" and ps[-1] == 5.0 and "(equal epochs)" in t2.note
    s = accuracy.Accuracy(preset=p, experiments={}, results=own, best=max(p.widths), gains={}, numbers={},
                          grad_norms={max(p.widths): (1.0, 1.0)}, table1=t1, table2=t2, setup_table=t1,
                          grad_table=t1, larger=larger)
    found = {c.id: c for c in accuracy.rows(s)}
    assert found["first-gain"].ours == 5.0 and found["table1-e"].ours == 1.0 and found["table2-e"].ours == 0.4
    del larger[accuracy.SHORT, 256]  # not stored: against Table 1's 2000-epoch network, as before
    assert {c.id: c for c in accuracy.rows(s)}["first-gain"].ours == 2.5
    alone = accuracy.larger_text(accuracy._larger_numbers({("first", 256): first}))
    assert alone.startswith("First-derivative training of the same network gets 500 epochs") and "gain" not in alone
    assert accuracy.larger_text(accuracy._larger_numbers({})) == ""


def test_the_robustness_chapter_shows_the_larger_presets_stored_networks(env, monkeypatch):
    """Tables 3-5 get a row for each stored network of the larger preset (smoke stands in for
    paper-small: the same networks, so the rows must equal the build's own), its numbers reach
    the text, and the intro's Tables 3-5 claims come from it."""
    from cubelib.studies import robustness as R, robustness_figures
    monkeypatch.setattr(R, "LARGER", "smoke")
    s, q = R.study("smoke"), presets.get("smoke")
    W = q.sweep_width
    for table in (s.table3, s.table5):
        own = [r[1:] for r in table.rows if r[0] == f"L = {W}"]
        assert own and [r[1:] for r in table.rows if r[0] == f"L = {W}, `smoke`"] == own
    # the trade-off epoch is one more than the schedule: the row says so
    assert [r[0] for r in s.table4.rows if "`smoke`" in r[0]] == [f"L = {W}, `smoke`, {q.epochs + 1} epochs"]
    assert "Rows `smoke`" in s.table4.note and "Rows `smoke`" in s.table5.note
    adjusted = s.robust(experiments.Robust(tradeoff=True))
    assert s.numbers["ps_t5_v_max"] == s.table5_network(W).v_max_test
    assert s.numbers["ps_t4_e"] == adjusted.e_test and s.numbers["ps_t4_paper_e"] == paper.TABLE4[256]["e"][1]
    found = {c.id: c for c in R.rows(s)}
    assert found["table4-e"].ours == adjusted.e_test and found["table4-e"].preset == "smoke"
    # the Tables 3-4 paragraph: its numbers, and robust training against the best of each sweep
    text, rob = R.larger_tables34_text(s), s.robust()
    assert (f"Robust training ends at a test error of {rob.e_test:.2f} % and $\\bar v_{{\\max}}$ = "
            f"{rob.v_max_test:.1f} %") in text and f"After the trade-off epoch: {adjusted.e_test:.2f} %" in text
    for method in ("gaussian", "jacobian"):
        ratio = s.best_result(method).v_max_test / rob.v_max_test
        vulnerable = "as" if round(ratio, 2) == 1 else "less" if ratio > 1 else "more"
        assert (f"robust training is {vulnerable} vulnerable (the ratio of the two "
                f"$\\bar v_{{\\max}}$, sweep / robust: {ratio:.2f})") in text
    assert "The paper's own 0.6M networks give 1.17 (Table 5's $\\sigma$ = 0.055 against Table 3: 24.7 % and 21.1 %)" \
        in text and "its 2.3 is the 20M robust network" in text
    assert found["table5-vmax"].ours == s.table5_network(W).v_max_test
    # its sweeps: the stored points, and (robust network and whole sweep stored) the baseline claims
    for method in ("gaussian", "jacobian"):
        best = s.best_result(method)
        assert s.numbers[f"ps_{method}_best_v"] == best.v_max_test and s.numbers[f"ps_{method}_of"] == 1
        # the claim reads the larger preset's sweep: make its point differ from the build's own
        (v, r), = R.larger_sweep(s, method).items()
        s.larger[r.name] = dataclasses.replace(r, metrics={**r.metrics, "v_max_test": 2 * r.v_max_test})
        claim = {c.id: c for c in R.rows(s)}[f"robust-vs-{method}"]
        assert claim.ours == 2 * best.v_max_test / s.robust().v_max_test and claim.preset == "smoke"
        assert claim.ours > 1.5 and (f"robust training is less vulnerable (the ratio of the two $\\bar v_{{\\max}}$, "
                                     f"sweep / robust: {claim.ours:.2f}) and") in R.larger_tables34_text(s)
    assert "ps_short_v" not in s.numbers  # the sweep's sigma = 0.055 network is Table 5's own here
    fig = robustness_figures.plot_sweeps(s)
    labels = [t.get_text() for leg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
              for t in leg.get_texts()]
    assert sum(R.larger_label(q.epochs) in x for x in labels) == 2  # one entry per legend, not per panel
    # a sweep not trained to the end: its best is provisional, and the claim keeps the build's own
    real = R._sweep_experiments

    def planned(p, method):  # the larger sweep plans one more sigma than is stored
        exps = real(p, method)
        if method == "gaussian" and p.name == R.LARGER:
            (v, e), = exps.items()
            exps = {v: e, 2 * v: dataclasses.replace(e, name=e.name + "-not-stored")}
        return exps
    monkeypatch.setattr(R, "_sweep_experiments", planned)
    n = R._larger_sweep_numbers(s)
    v = min(R.larger_sweep(s, "gaussian"))
    assert n["ps_gaussian_where"] == f"provisional while σ = {2 * v:g} is not trained yet"
    assert R._where(0, 3, "c²", missing={100.0, 1000.0}) == "provisional while c² = 100 and 1000 are not trained yet"
    assert R._where(0, 4, "c²", missing={1.0, 100.0, 10.0}) == "provisional while c² = 1, 10 and 100 are not trained yet"
    assert n["ps_gaussian_of"] == 2 and n["ps_gaussian_stored"] == 1 and not n["ps_gaussian_compared"]
    assert n["ps_jacobian_compared"] and n["ps_jacobian_where"] == "the sweep's only point"
    s.numbers.update(n)
    text = R.larger_sweeps_text(s)
    assert f"The lowest is {n['ps_gaussian_best_v']:.1f} % at σ = {v:g}" in text and "provisional while" in text
    claim = {c.id: c for c in R.rows(s)}["robust-vs-gaussian"]
    assert claim.ours == s.best_result("gaussian").v_max_test / s.robust().v_max_test  # not the doubled point
    # the price of the shortened schedule (paper-small: its sweep has 500 epochs, Table 5's network
    # 2000): give Table 5 a network of its own with four times the epochs and half the errors
    short = R.larger_sweep(s, "gaussian")[experiments.TABLE5_SIGMA]
    whole_exp = dataclasses.replace(R.TABLE_NETWORK[5](q, W), name=short.name + "-whole-schedule")
    monkeypatch.setitem(R.TABLE_NETWORK, 5, lambda p, w: whole_exp)
    recipe = {**short.config["recipe"], "phases": [{**ph, "epochs": 4 * ph["epochs"]}
                                                   for ph in short.config["recipe"]["phases"]]}
    s.larger[whole_exp.name] = dataclasses.replace(
        short, name=whole_exp.name, config={**short.config, "recipe": recipe},
        metrics={**short.metrics, "e_test": short.e_test / 2, "v_max_test": short.v_max_test / 2})
    n = R._larger_sweep_numbers(s)
    assert (n["ps_short_epochs"], n["ps_whole_epochs"]) == (short.epochs, 4 * short.epochs)
    assert (n["ps_short_e"], n["ps_whole_e"], n["ps_whole_v"]) == (short.e_test, short.e_test / 2,
                                                                  short.v_max_test / 2)
    s.numbers.update(n)
    text = R.larger_sweeps_text(s)
    assert (f"{short.epochs} epochs end at a test error of {short.e_test:.2f} % and $\\bar v_{{\\max}}$ = "
            f"{short.v_max_test:.1f} %, the whole {4 * short.epochs} epochs (Table 5's network) at "
            f"{short.e_test / 2:.2f} %") in text
    # the robust network and the Jacobian sweep are stored, the Gaussian sweep misses a point
    assert ("Robust training is therefore compared with the Jacobian regularisation sweep, of equal schedule, not "
            "with Table 5's network; with the Gaussian augmentation sweep once all its networks are trained.") in text
    monkeypatch.setattr(R, "_sweep_experiments", real)  # the whole sweep stored: the comparison is made
    s.numbers.update(R._larger_sweep_numbers(s))
    text = R.larger_sweeps_text(s)
    assert "is therefore compared with the sweeps" in text and "once its network" not in text
    monkeypatch.setattr(R, "_sweep_experiments", planned)
    del s.larger[whole_exp.name]
    # only the Gaussian column has larger points (as while the Jacobian sweep trains): both legends say so
    for r in list(R.larger_sweep(s, "jacobian").values()):
        del s.larger[r.name]
    fig = robustness_figures.plot_sweeps(s)
    legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
    assert len(legends) == 2 and all(any(R.larger_label(q.epochs) in t.get_text() for t in leg.get_texts())
                                     for leg in legends)
    # the plane: the larger preset's networks in a second panel, with the paper's of that size
    a = types.SimpleNamespace(numbers={"zero_gradient_v": 28.0}, capacity=types.SimpleNamespace(larger=None))
    fig = robustness_figures.plot_plane(s, a)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend, below both panels
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == R.larger_label(q.epochs)
    assert {"paper, Table 3 (0.6M)", "paper, Table 4 (0.6M)", "robust", "robust, trade-off adj."} <= set(labels)
    assert len(labels) == len(set(labels))  # one entry per label, not per panel
    del s.numbers["ps_t3_v_max"]  # its robust network not stored: no paragraph
    assert R.larger_tables34_text(s) == ""
    del s.larger[R.larger_network(s, 3)[1].name]  # nor the plane's panel and paragraph
    assert len(robustness_figures.plot_plane(s, a).axes) == 1 and R.larger_plane_text(s) == ""



def test_the_comparison_with_the_sweeps_says_what_it_waits_for():
    """Constructed numbers: robust training stored or not, each sweep whole, partial or absent."""
    from cubelib.studies import robustness as R

    def n(robust, gaussian, jacobian):  # each sweep: (stored, of) or None when no point is stored
        out = {"ps_t3_v_max": 20.0} if robust else {}
        for m, sw in (("gaussian", gaussian), ("jacobian", jacobian)):
            if sw is not None:
                out.update({f"ps_{m}_stored": sw[0], f"ps_{m}_of": sw[1],
                            f"ps_{m}_compared": robust and sw[0] == sw[1]})
        return out
    head = "Robust training will therefore be compared with the sweeps, of equal schedules, not with Table 5's network"
    assert R._compared_text(n(True, (6, 6), (3, 3))) == \
        "Robust training is therefore compared with the sweeps, of equal schedules, not with Table 5's network."
    assert R._compared_text(n(True, (6, 6), (1, 3))).endswith(
        "compared with the Gaussian augmentation sweep, of equal schedule, not with Table 5's network; with the "
        "Jacobian regularisation sweep once all its networks are trained.")
    assert R._compared_text(n(True, (6, 6), None)).endswith(
        "with the Jacobian regularisation sweep once all its networks are trained.")
    assert R._compared_text(n(True, (5, 6), (1, 3))) == head + (
        ", once the Gaussian augmentation sweep and the Jacobian regularisation sweep are complete.")
    assert R._compared_text(n(False, (6, 6), (3, 3))) == head + ", once its network is trained."
    assert R._compared_text(n(False, (6, 6), (1, 3))) == head + (
        ", once its network is trained and the Jacobian regularisation sweep is complete.")


def test_a_partial_sweep_says_its_takeover_is_of_the_points_stored():
    from cubelib.studies import robustness as R
    assert R._takeover_text([10, 100], None, "jacobian", whole=False) == \
        "does not overtake the sensitivity attack at the points trained so far"
    assert R._takeover_text([10, 100], 1, "jacobian", whole=False) == \
        "overtakes the sensitivity attack from c² = 100 among the points trained so far"
    assert R._takeover_text([10, 100], 1, "jacobian") == "overtakes the sensitivity attack from c² = 100"
    assert R._takeover_text([0.1, 0.2, 0.3], None, "gaussian", v_sen=[30, 25, 24.5], v_inv=[20, 24.2, 24.0]) == \
        "never overtakes the sensitivity attack in this sweep; at σ = 0.3 it comes within 0.5 points of it"


def test_the_larger_sweeps_text_splits_the_attacks_along_a_sweep(env, monkeypatch):
    """Constructed three-point sweeps with known (v_sen, v_inv): where the invariance attack
    takes over, and, when the lowest v_max is the sweep's last point, how the two attacks and
    the error move from the takeover on; the rule is the one the build's own sweeps use."""
    from cubelib.studies import robustness as R
    assert R._takeover([30, 20, 15], [20, 21, 19]) == 1 and R._takeover([3, 2], [1, 1]) is None
    assert R._takeover([1, 1], [1, 0]) == 0  # a tie counts as overtaken
    monkeypatch.setattr(R, "LARGER", "smoke")
    s = R.study("smoke")
    (v, point), = R.larger_sweep(s, "gaussian").items()
    real = R._sweep_experiments

    def three(p, method):
        exps = real(p, method)
        if method == "gaussian" and p.name == R.LARGER:
            exps = {k * v: dataclasses.replace(exps[v], name=f"{exps[v].name}-x{k}") for k in (1, 2, 3)}
        return exps

    def store_sweep(rows):  # (v_sen, v_inv, v_max, e) at 1v, 2v, 3v
        for k, (sen, inv, vmax, e) in zip((1, 2, 3), rows):
            name = f"{point.name}-x{k}"
            s.larger[name] = dataclasses.replace(point, name=name, metrics={
                **point.metrics, "v_sen_test": sen, "v_inv_test": inv, "v_max_test": vmax, "e_test": e})
        for key in [k for k in s.numbers if k.startswith("ps_gaussian_")]:
            del s.numbers[key]  # numbers of the previous constructed sweep
        s.numbers.update(R._larger_sweep_numbers(s))
        return R.larger_sweeps_text(s)

    monkeypatch.setattr(R, "_sweep_experiments", three)
    del s.larger[point.name]
    text = store_sweep([(30, 20, 31, 3), (20, 21, 22, 5), (15, 19, 20, 9)])
    assert s.numbers["ps_gaussian_takeover"] == f"overtakes the sensitivity attack from σ = {2 * v:g}"
    assert f"The lowest is 20.0 % at σ = {3 * v:g} (test error 9.0 %), at the end of the sweep" in text
    assert (f"Its invariance attack overtakes the sensitivity attack from σ = {2 * v:g} (the paper: from 0.1); "
            f"from σ = {2 * v:g} on, $\\bar v_{{\\text{{inv}}}}$ stays within 19.0-21.0 %, while "
            f"$\\bar v_{{\\text{{sen}}}}$ goes from 20.0 to 15.0 % and the test error from 5.0 to 9.0 %.") in text
    # robust training against this (complete) sweep: its best, and its best among the networks no
    # less accurate than robust training
    _, rob = R.larger_network(s, 3)
    s.larger[rob.name] = dataclasses.replace(rob, metrics={**rob.metrics, "e_test": 6.0, "v_max_test": 21.0})
    t34 = R.larger_tables34_text(s)
    assert (f"(σ = {3 * v:g}: $\\bar v_{{\\max}}$ = 20.0 %, test error 9.00 %), robust training is more vulnerable "
            f"(the ratio of the two $\\bar v_{{\\max}}$, sweep / robust: 0.95) and more accurate.") in t34
    assert (f"Among the sweep's networks no less accurate than robust training (test error at most 6.00 %), the "
            f"lowest $\\bar v_{{\\max}}$ is 22.0 % at σ = {2 * v:g} (ratio 1.05).") in t34
    s.larger[rob.name] = dataclasses.replace(rob, metrics={**rob.metrics, "e_test": 2.0, "v_max_test": 21.0})
    assert "None of the sweep's networks is as accurate as robust training." in R.larger_tables34_text(s)
    s.larger[rob.name] = dataclasses.replace(rob, metrics={**rob.metrics, "e_test": 10.0, "v_max_test": 21.0})
    assert "no less accurate" not in R.larger_tables34_text(s)  # the sweep's best is accurate enough
    # the lowest inside the sweep: nothing to explain
    text = store_sweep([(30, 20, 31, 3), (20, 21, 19, 5), (15, 19, 20, 9)])
    assert "ps_gaussian_tail" not in R._larger_sweep_numbers(s) and "stays within" not in text
    assert f"The lowest is 19.0 % at σ = {2 * v:g} (test error 5.0 %), inside the sweep." in text
    # the plane: both robust networks against the sweep's curve at their own test errors
    # (interpolated in log e and log v_max between the neighbours that bracket them)
    store_sweep([(30, 20, 31, 3), (20, 21, 22, 5), (15, 19, 20, 9)])
    _, adjusted = R.larger_network(s, 4)

    def plane(rob_ev, adj_ev):
        s.larger[rob.name] = dataclasses.replace(rob, metrics={**rob.metrics, "e_test": rob_ev[0],
                                                                "v_max_test": rob_ev[1]})
        s.larger[adjusted.name] = dataclasses.replace(adjusted, metrics={**adjusted.metrics, "e_test": adj_ev[0],
                                                                          "v_max_test": adj_ev[1]})
        return R.larger_plane_text(s)

    def curve(e, a, b):  # the straight line through a and b on log-log axes, at e
        t = math.log(e / a[0]) / math.log(b[0] / a[0])
        return a[1] ** (1 - t) * b[1] ** t

    at6, at4 = curve(6.0, (5, 22), (9, 20)), curve(4.0, (3, 31), (5, 22))
    text = plane((6.0, at6), (4.0, at4))  # both exactly on the curve
    assert (f"At robust training's test error, 6.00 %, the sweep's curve (interpolated between σ = {2 * v:g} and "
            f"{3 * v:g}) is at {at6:.1f} %, against its {at6:.1f} % (sweep / robust 1.000: within 5 % of the curve); at the "
            f"trade-off adjusted network's test error, 4.00 %, the sweep's curve (interpolated between σ = {v:g} and "
            f"{2 * v:g}) is at {at4:.1f} %") in text
    assert ("Both robust networks lie within 5 %, the book's tolerance for no effect (the largest seed-to-seed "
            "spread measured, of test errors") in text
    assert "The Gaussian augmentation sweep runs from a test error of 3.00 % and $\\bar v_{\\max}$ = 31.0 %" in text
    assert "1.05x less vulnerable and 1.70x less accurate" in text  # the paper's Tables 4 and 5 at 0.6M
    text = plane((6.0, at6 / 1.1), (4.0, at4 / 1.1))  # 10 % under it: below
    assert "(sweep / robust 1.100: below the curve)" in text and "Both robust networks lie below the curve" in text
    text = plane((6.0, at6 * 1.1), (4.0, at4))  # mixed: no sentence on both
    assert "(sweep / robust 0.909: above the curve)" in text and "Both robust" not in text
    text = plane((6.0, at6), (2.0, at4))  # more accurate than the whole sweep
    assert "the trade-off adjusted network's test error, 2.00 %, lies outside the errors the sweep spans" in text
    # the chapter's closing list at the larger preset: Tables 3-4, the plane, the schedule, capacity
    plane((6.0, at6), (4.0, at4))
    q = presets.get(R.LARGER)
    n, t5name = R.larger_network(s, 3)[1].epochs, R.TABLE_NETWORK[5](q, q.sweep_width).name
    t5 = point  # Table 5's network: the sweep's point at its sigma, replaced above by the constructed sweep
    recipe = {**t5.config["recipe"], "phases": [{**ph, "epochs": 2 * ph["epochs"]} for ph in t5.config["recipe"]["phases"]]}
    s.larger[t5name] = dataclasses.replace(t5, config={**t5.config, "recipe": recipe}, curves={
        **t5.curves, "epoch": [n, 2 * n], "e_test": [8.0, 4.0], "v_max_test": [40.0, 30.0]})
    now = s.larger[rob.name]
    s.larger[rob.name] = dataclasses.replace(now, curves={**now.curves, "epoch": [n - 1, n], "e_test": [7.0, 6.0],
                                                          "v_max_test": [23.0, 22.0]})
    text = R.larger_summary_text(s, {"ps_cap_own": 14.0, "ps_cap_vmax": 23.0, "ps_cap_images": 256})
    assert f"Robust training ends at $\\bar v_{{\\max}}$ = {at6:.1f} % and a test error of 6.00 % after {n}" in text
    assert ("sweep / robust = 1.000 (robust training) and 1.000 (trade-off adjusted): no ratio is past the "
            "book's 5 % tolerance for no effect") in text
    assert (f"Robust training had not finished learning at epoch {n}: along its learning curve (first "
            f"{evaluate.CURVE_VUL_IMAGES} test images) its $\\bar v_{{\\max}}$ went from 23.0 % at epoch {n - 1} to "
            f"22.0 % and its error from 7.0 to 6.0 %") in text
    assert f"the one network here trained for all {2 * n} epochs, went from 40.0 % at epoch {n} to 30.0 %" in text
    assert "own first layer allows 14.0 % and it reaches 23.0 % (first 256 test images): at L = " in text
    assert "the first layer may be what stops it" in R.larger_summary_text(
        s, {"ps_cap_own": 22.5, "ps_cap_vmax": 23.0, "ps_cap_images": 256})
    plane((6.0, at6 / 1.1), (2.0, at4))  # the trade-off adjusted network more accurate than the whole sweep
    assert ("sweep / robust = 1.100 (robust training) and none for trade-off adjusted (its error lies outside the "
            "sweep's): robust training is less vulnerable at equal error by up to 1.10x") in R.larger_summary_text(s, {})
    plane((6.0, at6), (4.0, at4))
    s.larger[t5name] = t5
    assert "The schedule" not in R.larger_summary_text(s, {})  # Table 5's network has the same schedule
    del s.larger[t5name]
    assert "Capacity" not in R.larger_summary_text(s, {})
    s.larger[rob.name], s.larger[adjusted.name] = rob, adjusted
    # the invariance attack never overtakes: said so, and no tail either
    text = store_sweep([(30, 20, 31, 3), (25, 21, 26, 5), (22, 19, 23, 9)])
    assert (f"Its invariance attack never overtakes the sensitivity attack in this sweep; at σ = {3 * v:g} it comes "
            f"within 3.0 points of it (the paper: from 0.1).") in text
    assert "stays within" not in text


def _compute_a():
    """One docstring."""
    return {"x": 1.0}  # a comment


def _compute_b():
    """Another docstring."""
    # another comment
    return {"x": 1.0}


def _compute_c():
    return {"x": 2.0}


def test_an_analysis_key_covers_its_computing_function(env):
    """Comments and docstrings of the computing function change nothing; its code does: the
    stored numbers of an edited function are not reused."""
    from cubelib import noise
    spec = {"images": 3}
    key = lambda f: store.analysis_key(spec, (noise, f))
    assert key(_compute_a) == key(_compute_b) != key(_compute_c)
    assert store.analysis_key(spec, (noise,)) != key(_compute_a)
    first = store.analysis("smoke", "t", spec, (noise, _compute_a), _compute_a)
    assert store.analysis("smoke", "t", spec, (noise, _compute_b)) == first  # loaded, not computed
    assert store.analysis("smoke", "t", spec, (noise, _compute_c)) is None  # edited: not found
    assert store.analysis("smoke", "t", spec, (noise, _compute_c), _compute_c)["x"] == 2.0
