"""`python -m cubelib sweep` (cubelib/sweep.py): a chapter's networks as Ray tasks give the
files of a serial run bit for bit, children after their parents; a second sweep does nothing;
the flags fail clearly.  The Ray runs start a local Ray in a subprocess (two CLI calls, one
start each) and leave no Ray process behind."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cubelib import data, experiments, store, sweep
from cubelib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
PAIR = ("--only", "robust-L16", "--only", "robust-tradeoff-L16")  # a robust network and its trade-off child


def _chosen():
    acc = experiments.accuracy_experiments("smoke")
    pair = [e for e in experiments.robust_experiments("smoke") if e.name.endswith(("-robust-L16", "-robust-tradeoff-L16"))]
    assert [e.name for e in pair] == ["robustness-smoke-robust-L16", "robustness-smoke-robust-tradeoff-L16"]
    assert pair[1].parent == pair[0]
    return acc, pair


def _root(tmp: Path, name: str) -> dict:
    """A fresh results root and cache (holding only the smoke data set): the variables."""
    cfg = experiments.accuracy("smoke", "conventional", 16).data
    src = data.cache_path(cfg, tmp / "data")
    if not src.exists():
        shared = data.cache_path(cfg, data.default_cache_dir())
        if shared.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(shared, src)
        else:
            data.load(cfg, cache_dir=tmp / "data", progress=False)
    dest = data.cache_path(cfg, tmp / name / "cache")
    dest.parent.mkdir(parents=True)
    shutil.copy2(src, dest)
    return {"CUBELIB_CACHE": str(tmp / name / "cache"), "CUBELIB_RESULTS": str(tmp / name / "results")}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the accuracy chapter and the robust pair by --engine serial (store.run)."""
    tmp = tmp_path_factory.mktemp("sweep")
    env = _root(tmp, "serial")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("CUBELIB_NO_TRAIN", raising=False)
        assert main(["sweep", "accuracy", "--preset", "smoke", "--engine", "serial"]) == 0
        assert main(["sweep", "robustness", "--preset", "smoke", "--engine", "serial", *PAIR]) == 0
    return tmp, Path(env["CUBELIB_RESULTS"])


def _same(exps, a: Path, b: Path):
    """Results of `exps` under roots a and b: metrics, curves and config equal, weights bitwise."""
    for e in exps:
        ra, rb = store.read(e, a), store.read(e, b)
        assert (ra.metrics, ra.curves, ra.config) == (rb.metrics, rb.curves, rb.config), e.name
        wa = torch.load(e.weights_path(a), weights_only=True)
        wb = torch.load(e.weights_path(b), weights_only=True)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), e.name
        assert e.weights_path(a).read_bytes() == e.weights_path(b).read_bytes(), e.name


def _manifest_lists(exps, root: Path):
    for preset in {e.preset for e in exps}:
        entries = store.manifest(preset, root)
        assert set(entries) == {e.key() for e in exps if e.preset == preset}
    for e in exps:
        files = store.manifest(e.preset, root)[e.key()]["sha256"]
        for f in (e.path(root), e.weights_path(root)):
            assert files[f.name] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert not store.status(exps, root)["missing"] and not store.status(exps, root)["corrupt"]


def _ray_pids() -> set[str]:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout
    return set(out.split())


def _cli(env: dict, *args) -> subprocess.CompletedProcess:
    full = dict(os.environ, OMP_NUM_THREADS="1", **env)
    full.pop("CUBELIB_NO_TRAIN", None)
    full.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "cubelib", "sweep", *args], capture_output=True, text=True,
                          env=full, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_ray_sweep_is_the_serial_run(serial):
    pytest.importorskip("ray")
    tmp, reference = serial
    acc, pair = _chosen()
    env = _root(tmp, "ray")
    before = _ray_pids()
    out = _cli(env, "accuracy", "--preset", "smoke", "--engine", "ray", "--workers", "2").stdout
    assert "2 to train" in out and "local Ray with 2 CPUs" in out and "2 trained, 0 failed" in out, out
    out = _cli(env, "robustness", "--preset", "smoke", "--engine", "ray", "--workers", "2", *PAIR).stdout
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in lines] == [e.name + ":" for e in pair], out  # the parent first
    root = Path(env["CUBELIB_RESULTS"])
    _same(acc + pair, reference, root)
    _manifest_lists(acc + pair, root)
    assert all(store.read(e, root).provenance["device"].endswith("1 thread)") for e in acc + pair)

    # a second sweep finds everything stored: no Ray, no file touched
    stamp = {f: f.stat().st_mtime_ns for f in root.rglob("*")}
    out = _cli(env, "accuracy", "--preset", "smoke", "--engine", "ray", "--workers", "2").stdout
    assert "2 stored, 0 to train" in out and "Ray" not in out, out
    assert {f: f.stat().st_mtime_ns for f in root.rglob("*")} == stamp
    assert _ray_pids() <= before, "Ray processes left behind"


class FakeRay:
    """Ray's API as sweep.py uses it, run in this process: each task runs (really) when the
    driver waits for it, in submission order.  `events` records submissions and completions;
    `forget` lists experiments whose checkpoint is deleted once done (a worker elsewhere)."""

    class Ref:
        def __init__(self, value=None):
            self.value, self.error = value, None

    def __init__(self, forget=(), fail=()):
        self.events, self.forget, self.fail, self.queue = [], set(forget), set(fail), {}

    def init(self, **kwargs):
        self.events.append(("init", kwargs))

    def shutdown(self):
        self.events.append(("shutdown",))

    def cluster_resources(self):
        return {"CPU": 2.0}

    def put(self, value):
        return self.Ref(value)

    def remote(self, fn):
        ray = self

        class Task:
            def options(self, **kw):
                return type("Bound", (), {"remote": staticmethod(lambda *args: ray._submit(fn, kw, args))})

        return Task()

    def _submit(self, fn, kw, args):
        self.events.append(("submit", args[0].name, args[3] is not None, kw["num_cpus"], kw["num_gpus"]))
        ref, ck = self.Ref(), self.Ref()
        self.queue[ref] = (fn, args, ck)
        return ref, ck

    def wait(self, refs, num_returns=1):
        ref = refs[0]
        fn, args, ck = self.queue.pop(ref)
        exp = args[0]
        args = [a.value if isinstance(a, self.Ref) else a for a in args]
        try:
            if exp.name in self.fail:
                raise RuntimeError("a worker failed")
            ref.value, ck.value = fn(*args)
        except Exception as exc:
            ref.error = exc
        if exp.name in self.forget:
            exp.checkpoint_path().unlink()
        self.events.append(("done", exp.name))
        return [ref], refs[1:]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value


def test_parent_checkpoint_travels_to_the_child(serial, monkeypatch):
    """Without a shared cache (the parent's checkpoint gone from the child's machine) the child
    gets it from the parent's task, starts after it, and matches the serial run."""
    tmp, reference = serial
    _, pair = _chosen()
    for k, v in _root(tmp, "fake").items():
        monkeypatch.setenv(k, v)
    fake = FakeRay(forget={pair[0].name})
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert sweep.run_ray(list(pair), "cpu", address="head:6379", workers=1) == 0
    assert fake.events[0] == ("init", {"address": "head:6379", "logging_level": "warning"})  # no local Ray
    assert [e[:3] for e in fake.events[1:-1]] == [("submit", pair[0].name, False), ("done", pair[0].name),
                                                   ("submit", pair[1].name, True), ("done", pair[1].name)]
    assert fake.events[-1] == ("shutdown",)
    assert pair[0].checkpoint_path().exists()  # written back from the bytes the child received
    _same(pair, reference, store.results_root())
    _manifest_lists(pair, store.results_root())


def test_failed_parent_skips_its_child(env, monkeypatch, capsys):
    _, pair = _chosen()
    fake = FakeRay(fail={pair[0].name})
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert sweep.run_ray(list(pair), "cpu", workers=2) == 2  # one failed, one not started
    assert fake.events[0] == ("init", {"address": "local", "num_cpus": 2, "include_dashboard": False,
                                       "logging_level": "warning"})
    assert [e[1] for e in fake.events if e[0] == "submit"] == [pair[0].name]
    out = capsys.readouterr().out
    assert "FAILED: RuntimeError: a worker failed" in out and f"not started (parent failed): {pair[1].name}" in out
    assert not list((env / "results").rglob("*.json"))


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark"], "argument --engine: invalid choice: 'spark' (choose from 'serial', 'ray')"),
    (["--engine", "ray", "--workers", "0"], "argument --workers: must be an integer >= 1"),
    (["--engine", "ray", "--device", "cuda", "--gpus-per-task", "0"], "argument --gpus-per-task: must be a fraction"),
    (["--engine", "ray", "--device", "cuda", "--gpus-per-task", "1.5"], "in (0, 1]"),
    (["--engine", "ray", "--device", "tpu"], "argument --device: invalid choice: 'tpu' (choose from 'cpu', 'cuda')"),
])
def test_bad_flags(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "accuracy", "--preset", "smoke", *args])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--engine", "ray", "--gpus-per-task", "0.5"], "--gpus-per-task needs --device cuda"),
    (["--address", "head:6379"], "--address needs --engine ray"),
    (["--workers", "2"], "--workers needs --engine ray"),
])
def test_inconsistent_flags(args, message, env):
    with pytest.raises(SystemExit, match=message.replace("-", r"\-")):
        main(["sweep", "accuracy", "--preset", "smoke", *args])


def test_without_ray(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(SystemExit, match=r"Ray is not installed; pip install ray"):
        main(["sweep", "accuracy", "--preset", "smoke", "--engine", "ray"])
    with pytest.raises(SystemExit, match=r'pip install "ray\[client\]"'):
        main(["sweep", "accuracy", "--preset", "smoke", "--engine", "ray", "--address", "ray://head:10001"])
    assert not (env / "results").exists()


def test_ray_client_address_needs_the_client(env, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setitem(sys.modules, "grpc", None)  # ray without its [client] extra
    with pytest.raises(SystemExit, match=r'ray:// address needs Ray Client; pip install "ray\[client\]"'):
        main(["sweep", "accuracy", "--preset", "smoke", "--engine", "ray", "--address", "ray://head:10001"])
    assert not (env / "results").exists()
