"""`python -m cubelib gpu-batch` (a GPU window in one command) on the CPU at the smoke
preset, without scipy, matplotlib, tqdm or Jupyter, and `python -m cubelib import` of its archive."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from cubelib import data, experiments, gpu_archive, gpu_batch, gpu_checks, store, train
from cubelib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
# what a machine with only torch (and numpy) lacks: importing any of them fails in the run
ABSENT = ("scipy", "matplotlib", "tqdm", "IPython", "myst_nb", "jupytext", "papermill", "nbformat")
RUNNER = ("import sys\nfor m in %r: sys.modules[m] = None\n"
          "from cubelib.__main__ import main\nsys.exit(main(sys.argv[1:]))" % (ABSENT,))
BUDGET = 25  # seconds: the self-check, a benchmark at L = 16, then smoke networks until ~15 s


def _smoke_data(cache: Path):
    """The smoke data set in `cache`: copied from the test session's cache when there, else built."""
    cfg = experiments.accuracy("smoke", "conventional", 16).data
    dest = data.cache_path(cfg, cache)
    src = data.cache_path(cfg, data.default_cache_dir())
    if src.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    else:
        data.load(cfg, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One gpu-batch run: (out folder, report, completed process, its env)."""
    tmp = tmp_path_factory.mktemp("gpu")
    _smoke_data(tmp / "cache")
    env = dict(os.environ, OMP_NUM_THREADS="1", CUBELIB_CACHE=str(tmp / "cache"), CUBELIB_RESULTS=str(tmp / "results"))
    env.pop("CUBELIB_NO_TRAIN", None)
    out = tmp / "out"
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RUNNER, "gpu-batch", "--preset", "smoke", "--device", "cpu",
                           "--budget", str(BUDGET), "--out", str(out), "--bench-widths", "16", "--bench-batch", "60"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert time.monotonic() - t < BUDGET + 20
    return out, json.loads((out / "report.json").read_text()), proc, env


def _trained(report):
    by_key = {e.key(): e for e in experiments.all_experiments("smoke")}
    return [by_key[r["key"]] for r in report["stages"]["train"]["trained"]]


def test_every_stage_runs_and_the_archive_holds_the_results(batch):
    out, report, proc, _ = batch
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "report.json", "results.tar.gz"]
    stages = report["stages"]
    assert list(stages) == ["self_check", "benchmark", "train", "archive"] and all(s["ok"] for s in stages.values())
    assert all(stages["self_check"][c]["ok"] for c in ("render", "jet", "step"))
    assert set(stages["self_check"]["step"]["terms"]) == {"E0", "E1", "E2", "R_low", "R_mid", "R2_low"}
    steps = stages["benchmark"]["steps"]
    assert [(s["L"], s["order"], s["precision"]) for s in steps] == \
        [(16, o, p) for o in (1, 2) for p in ("tf32", "bfloat16")]
    assert all(s["tflops"] > 0 and 0 < s["fraction_of_peak"] for s in steps if "skipped" not in s)
    assert stages["benchmark"]["matmul_peak_tflops"]["tf32"] > 0
    # Tables 1 and 2 first, then robust training at the smallest width
    trained = [e.name for e in _trained(report)]
    assert trained[:2] == ["accuracy-smoke-conventional-L16", "accuracy-smoke-first-L16"]
    train_ = stages["train"]
    assert train_["pending"] == len(experiments.all_experiments("smoke")) and not train_["failed"]
    assert len(train_["trained"]) + len(train_["unfinished"]) + len(train_["not_started"]) == train_["pending"]
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
        meta = json.load(tar.extractfile("gpu-batch.json"))
    assert (out / "results.tar.gz").stat().st_size <= gpu_archive.FILE_LIMIT
    assert meta["preset"] == "smoke" and meta["code_version"] == store.code_version()
    for e in _trained(report):
        assert f"results/smoke/{e.path().name}" in names and f"results/smoke/{e.weights_path().name}" in names
    log = (out / "log.txt").read_text()
    for stage in stages:
        assert f"== {stage}: ok" in log
    assert report["environment"]["device"] == "cpu" and report["exit"] == 0


def test_import_puts_the_results_where_the_store_finds_them_once(batch, env, capsys):
    out, report, _, _ = batch
    archive = str(out / "results.tar.gz")
    assert main(["import", archive, "--dry-run"]) == 0
    assert "would import" in capsys.readouterr().out and not (env / "results").exists()
    assert main(["import", archive]) == 0
    said = capsys.readouterr().out
    trained = _trained(report)
    assert f"imported {len(trained)} result(s) of preset smoke" in said
    for e in trained:
        res = store.load(e)
        assert res is not None and res.metrics["e_test"] == pytest.approx(
            [r for r in report["stages"]["train"]["trained"] if r["key"] == e.key()][0]["e_test"])
        assert store.model(e).n_weights() > 0
    found = store.status(experiments.all_experiments("smoke"))
    assert sorted(found["ok"]) == sorted(e.name for e in trained) and not found["corrupt"]
    before = {p: p.read_bytes() for p in (env / "results").rglob("*") if p.is_file()}
    assert main(["import", archive]) == 0  # a second import: nothing changes
    assert "nothing to import" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in (env / "results").rglob("*") if p.is_file()} == before


def test_import_refuses_a_conflicting_result_and_writes_nothing(batch, env):
    out, report, _, _ = batch
    archive = str(out / "results.tar.gz")
    first = _trained(report)[0]
    first.path().parent.mkdir(parents=True)
    raw = json.loads(tarfile.open(archive).extractfile(f"results/smoke/{first.path().name}").read())
    raw["metrics"]["e_test"] += 1.0  # the same experiment, other numbers
    first.path().write_text(json.dumps(raw))
    with pytest.raises(SystemExit, match="refusing to overwrite .*different result"):
        main(["import", archive])
    assert sorted(p.name for p in first.path().parent.iterdir()) == [first.path().name]


def test_import_refuses_results_of_no_experiment(batch, env, tmp_path):
    out, _, _, _ = batch
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(out / "results.tar.gz") as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            blob = src.extractfile(m).read()
            if m.name.endswith(".json") and "/accuracy-smoke-conventional-L16-" in m.name:
                m.name = m.name.rsplit("-", 1)[0] + "-0123456789abcdef.json"  # a key of no experiment
            dst.addfile(m, io.BytesIO(blob))
    with pytest.raises(SystemExit, match="not an experiment of preset smoke"):
        main(["import", str(bad)])
    assert not (env / "results").exists()


def test_unfinished_runs_come_back_as_checkpoints(env):
    """A network stopped by the budget: its checkpoint travels in the archive and lands where
    store.run resumes it; a second import keeps it."""
    exp = experiments.accuracy("smoke", "conventional", 16)
    _smoke_data(env / "cache")
    work = env / "out" / "work" / "results"
    work.mkdir(parents=True)
    assert store.run(exp, root=work, progress=False, time_limit=0) is None  # one epoch, then stopped
    ck = exp.checkpoint_path(work)
    logged = []
    packed = gpu_archive.pack(logged.append, env / "out", "smoke", work, {"unfinished": [{"key": exp.key()}], "trained": []},
                              experiments.all_experiments("smoke"))
    assert any(line.startswith("results.tar.gz: ") for line in logged)
    assert packed["checkpoints"][0]["epoch"] == 1 and f"checkpoints/smoke/{ck.name}" in packed["members"]
    ck.unlink()
    lines = gpu_archive.import_archive(env / "out" / "results.tar.gz")
    assert any("epoch 1 of 4 written" in line for line in lines) and ck.exists()
    assert any("kept" in line for line in gpu_archive.import_archive(env / "out" / "results.tar.gz"))
    assert store.load(exp) is None  # no result came with it


def test_training_goes_on_from_a_committed_checkpoint(env, monkeypatch):
    """A preset whose checkpoints are committed beside its results (paper-small's long CPU
    runs): the window copies a checkpoint into its work folder and trains on from it, to the
    weights of an uninterrupted run."""
    monkeypatch.setattr(store, "PERSISTENT_CHECKPOINTS", ("smoke",))
    exp = experiments.accuracy("smoke", "conventional", 16)
    _smoke_data(env / "cache")
    assert store.run(exp, progress=False, time_limit=0) is None  # one epoch, its checkpoint in results/
    monkeypatch.setattr(gpu_batch, "priority", lambda preset: [exp])
    started_at, real = [], train.train

    def spy(*args, **kwargs):  # the epoch each training in the window starts from
        res = real(*args, **kwargs)
        started_at.append(res.resumed_from)
        return res
    monkeypatch.setattr(train, "train", spy)
    (env / "out").mkdir()
    s = gpu_batch.Session(env / "out", 120, time.monotonic())
    work = env / "out" / "work" / "results"
    trained = gpu_batch.training(s, torch.device("cpu"), "smoke", work, 5.0, {}, None)
    s.close()
    assert [r["name"] for r in trained["trained"]] == [exp.name] and not trained["failed"]
    assert f"{exp.name}: resuming from {exp.checkpoint_path()} (epoch 1)" in (env / "out" / "log.txt").read_text()
    assert started_at == [1] and gpu_archive.checkpoint_epoch(exp.checkpoint_path()) == 1  # committed one untouched
    whole = store.run(exp, root=env / "uninterrupted", progress=False)
    assert whole.metrics == store.load(exp, work).metrics
    a, b = store.model(exp, root=work).state_dict(), store.model(exp, root=env / "uninterrupted").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_self_check_stops_before_training(env, monkeypatch, capsys):
    monkeypatch.setitem(gpu_checks.RENDER_TOL, "image", -1.0)  # no difference passes
    out = env / "out"
    assert main(["gpu-batch", "--preset", "smoke", "--device", "cpu", "--budget", "60", "--out", str(out)]) == 2
    assert "self-check failed" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == ["self_check"] and report["exit"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "report.json"]


@pytest.mark.parametrize("args, says", [
    (["--budget", "5"], "argument --budget: must be seconds between 10 and 86400, got '5'"),
    (["--budget", "soon"], "argument --budget: must be seconds between 10 and 86400"),
    (["--budget", "1e6"], "argument --budget: must be seconds between 10 and 86400"),
    (["--budget", "60", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["--budget", "60", "--bench-widths", "0,16"], "argument --bench-widths: must be comma-separated widths between 1"),
    (["--budget", "60", "--bench-batch", "0"], "argument --bench-batch: must be an integer between 1 and 100000"),
    (["--budget", "60", "--device", "tpu"], "--device must be 'cpu' or 'cuda[:N]', got 'tpu'"),
])
def test_bad_flags_are_named_with_their_range(env, capsys, args, says):
    with pytest.raises(SystemExit) as exc:
        main(["gpu-batch", "--out", str(env / "out"), *args])
    assert says in capsys.readouterr().err + str(exc.value.code)
    assert not (env / "out").exists()


def test_out_must_be_empty_and_the_archive_must_exist(env, capsys):
    (env / "out").mkdir()
    (env / "out" / "old.txt").write_text("x")
    with pytest.raises(SystemExit, match="--out .*must be an empty folder"):
        main(["gpu-batch", "--budget", "60", "--device", "cpu", "--out", str(env / "out")])
    with pytest.raises(SystemExit, match="import: .*no such file"):
        main(["import", str(env / "missing.tar.gz")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(env):
    with pytest.raises(SystemExit, match="--device cuda: CUDA is not available on this machine"):
        main(["gpu-batch", "--budget", "60", "--out", str(env / "out")])  # --device defaults to cuda
    assert not (env / "out").exists()


def test_priority_trains_tables_1_to_6_at_the_smallest_width_first():
    order = [e.name for e in gpu_batch.priority("paper")]
    assert sorted(order) == sorted(e.name for e in experiments.all_experiments("paper"))
    head = [f"accuracy-paper-{m}-L{w}" for w in (256, 512, 1024, 2048) for m in ("conventional", "first")]
    head += ["robustness-paper-robust-L256", "robustness-paper-robust-tradeoff-L256",
             "robustness-paper-gaussian-0.055-L256", "accuracy-paper-second-L256", "accuracy-paper-second-w0.01-L256"]
    assert order[:len(head)] == head
    # a parent always before its child
    for k, e in enumerate(gpu_batch.priority("paper")):
        if e.parent is not None:
            assert order.index(e.parent.name) < k
