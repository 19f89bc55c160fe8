"""Sweeps on a real Ray: embedded on this machine, and a multi-process cluster started here with
`ray start --head` and reached by address. Marked `ray` (select with -m ray, leave out with
-m "not ray"): Ray's start-up costs ~15-20 s here, so these are kept apart from the rest.

The order matters: the first tests start and stop their own Ray (or drive a cluster from a
process of their own); the last ones share one Ray session (the `ray_here` fixture), which
run_sweep uses as it finds it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from sweep_helpers import tiny_config

import cnncli
from cnncli.config import load_config
from cnncli.sweep import CnncliTrial, format_table, resume_sweep, run_sweep
from cnncli.sweep.spec import validate_spec

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason='Ray is not installed (pip install -e ".[sweep]")'),
]


#: trials without report.html (a few seconds each, the slowest part of a tiny trial)
QUICK = CnncliTrial(report=False)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_embedded_ray_runs_a_2x2_grid_with_2_seeds_into_one_sweep_folder(tmp_path):
    import ray

    config = tiny_config(tmp_path, epochs=2)
    spec = validate_spec({"name": "tiny", "base": str(config),
                          "grid": {"optimizer.lr": [0.003, 0.01], "train.batch_size": [32, 64]},
                          "seeds": [0, 1]}, source="test")
    events = []
    # report=False: report.html is cnncli train's (seen in the failures test), seconds each
    result = run_sweep(spec, tmp_path / "sweep", on_event=events.append, train_trial=QUICK)

    assert not ray.is_initialized()  # the embedded Ray is stopped again
    assert result.complete and len(result.trials) == 8
    assert [(r.status, r.epochs, r.blas_threads) for r in result.trials] == [("ok", 2, 1)] * 8
    for r in result.trials:  # each trial is an ordinary run folder, recorded as it wrote it
        summary = json.loads((Path(r.run_dir) / "summary.json").read_text())
        assert Path(r.run_dir) == tmp_path / "sweep" / "trials" / r.trial_id
        assert (r.best_val_acc, r.test_acc) == (summary["best_val_acc"],
                                                summary["test"]["accuracy"])
        saved = yaml.safe_load((Path(r.run_dir) / "config.yaml").read_text())
        assert saved["optimizer"]["lr"] == r.overrides["optimizer.lr"]
        assert saved["train"]["batch_size"] == r.overrides["train.batch_size"]
        assert saved["train"]["seed"] == r.seed
        assert r.data.startswith(f"idx folder {tmp_path / 'digits'} (train images sha256 ")
        assert r.cnncli == cnncli.__version__
    assert read_jsonl(tmp_path / "sweep" / "sweep.jsonl") == [
        {**vars(r)} for r in result.trials]
    assert len((tmp_path / "sweep" / "sweep.csv").read_text().splitlines()) == 9

    assert len(result.table) == 4
    for row in result.table:
        vals = [r.best_val_acc for r in result.trials if r.config_id == row.config_id]
        assert row.n == 2 and row.val_mean == pytest.approx(sum(vals) / 2)
    assert [row.val_mean for row in result.table] == sorted(
        (row.val_mean for row in result.table), reverse=True)
    best = load_config(str(result.best_config))
    top = result.table[0].overrides
    assert (best.run.optimizer.lr, best.run.train.batch_size) == (top["optimizer.lr"],
                                                          top["train.batch_size"])
    assert len(format_table(result.table).splitlines()) == 5

    kinds = [e.kind for e in events]
    assert kinds[0] == "sweep_start" and kinds[-1] == "sweep_end"
    assert (kinds.count("trial_start"), kinds.count("trial_end"), kinds.count("epoch")) == (
        8, 8, 16)


# -- a real cluster on this machine -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_cluster():
    """`ray start --head --block` on 127.0.0.1 with 2 CPUs: a GCS, a raylet and worker processes
    of their own, with a token of their own -> (address, environment for a driver).

    --block keeps that command as the parent of everything it started, so ending it by its
    process id stops exactly this cluster (`ray stop` would stop every Ray of this user on the
    machine)."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="cnncli-rayc-")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    log_path = Path(temp) / "start.log"
    with open(log_path, "w") as log:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
             "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log_path.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start --head did not come up: " + log_path.read_text()[-2000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()  # SIGTERM: the head drains, then stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


DRIVER = """\
import sys
from cnncli.sweep import CnncliTrial, run_sweep
from cnncli.sweep.spec import validate_spec
base, sweep_dir, address, storage = sys.argv[1:]
spec = validate_spec({"base": base, "grid": {"optimizer.lr": [0.003, 0.01]}, "seeds": [0, 1]},
                     source="test")
result = run_sweep(spec, sweep_dir, address=address, storage=storage,
                   train_trial=CnncliTrial(report=False))
import ray
assert not ray.is_initialized()
"""


def test_a_sweep_runs_on_a_cluster_reached_by_address(tmp_path, local_cluster):
    address, env = local_cluster
    config = tiny_config(tmp_path, epochs=2)
    # a driver process of its own, as a user's would be (Ray caches a process's token)
    done = subprocess.run([sys.executable, "-c", DRIVER, str(config), str(tmp_path / "sweep"),
                           address, str(tmp_path / "shared")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_jsonl(tmp_path / "sweep" / "sweep.jsonl")
    assert [(r["status"], r["blas_threads"]) for r in records] == [("ok", 1)] * 4
    assert all((Path(r["run_dir"]) / "summary.json").is_file() for r in records)
    assert any((tmp_path / "shared").iterdir())  # Ray's own records went to storage
    assert not (tmp_path / "sweep" / "ray").exists()


def test_an_address_where_nothing_listens_fails_in_one_line_at_once(tmp_path):
    from cnncli.errors import CnnError

    spec = validate_spec({"base": str(tiny_config(tmp_path))}, source="test")
    started = time.monotonic()
    with pytest.raises(CnnError, match=r"^cannot connect to the Ray cluster at 127.0.0.1:\d+: "
                                       r"Connection refused \(is `ray start --head` running"):
        run_sweep(spec, tmp_path / "sweep", address=f"127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 30  # Ray alone retries for many minutes


# -- tests sharing one embedded Ray ------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_here():
    """One embedded Ray for the tests below (one BLAS thread per worker, as run_sweep sets)."""
    import ray.cloudpickle
    import sweep_fakes

    from cnncli.sweep.ray_backend import ray_session

    ray.cloudpickle.register_pickle_by_value(sweep_fakes)
    with ray_session(None, threads=1):
        yield


def test_failures_stay_in_their_trial_with_a_one_line_reason(tmp_path, ray_here):
    config = tiny_config(tmp_path, epochs=2)
    spec = validate_spec({"base": str(config),
                          "grid": {"data.data_dir": [str(tmp_path / "digits"),
                                                     str(tmp_path / "nowhere")],
                                   "optimizer.type": ["sgd"],
                                   "optimizer.lr": [0.01, 1e30]}}, source="test")
    result = run_sweep(spec, tmp_path / "sweep")
    by = {(r.overrides["data.data_dir"].endswith("digits"), r.overrides["optimizer.lr"]): r
          for r in result.trials}
    assert by[True, 0.01].status == "ok" and by[True, 0.01].test_acc is not None
    assert (Path(by[True, 0.01].run_dir) / "report.html").is_file()  # as cnncli train writes
    nan = by[True, 1e30]
    assert nan.status == "failed" and nan.error.startswith("loss became nan in epoch 1")
    for lr in (0.01, 1e30):
        missing = by[False, lr]
        assert missing.status == "failed"
        assert missing.error == f"idx data folder {tmp_path / 'nowhere'} does not exist"
    assert result.complete
    assert result.table[0].config_id == by[True, 0.01].config_id
    assert [(r.n, r.failed) for r in result.table] == [(1, 0), (0, 1), (0, 1), (0, 1)]
    assert result.best_config is not None


def test_exceptions_and_dying_workers_are_failures_and_the_sweep_goes_on(tmp_path, ray_here):
    import sweep_fakes

    spec = validate_spec({"base": "fake", "grid": {"fail": ["no", "raise", "exit", "no2"],
                                                   "quality": [0.5]},
                          "max_concurrent": 1}, source="test")
    result = run_sweep(spec, tmp_path / "sweep", train_trial=sweep_fakes.scripted_trial,
                       resolve=sweep_fakes.any_config)
    status = {r.overrides["fail"]: (r.status, r.error) for r in result.trials}
    assert status["no"] == status["no2"] == ("ok", None)
    assert status["raise"] == ("failed", "RuntimeError: kaboom")
    assert status["exit"][0] == "failed" and "died" in status["exit"][1].lower()
    assert "\n" not in status["exit"][1]


def test_asha_cuts_trials_below_the_rung_cutoff_and_lets_the_others_finish(tmp_path, ray_here):
    import sweep_fakes

    # one trial at a time, so the rungs fill in a known order; 4 epochs, grace 1, factor 2:
    # rungs at epochs 1, 2 and 4, each cutting below the median of what it has recorded
    spec = validate_spec({"base": "fake", "grid": {"quality": [0.9, 0.1, 0.5, 0.95]},
                          "max_concurrent": 1,
                          "early_stopping": {"asha": {"grace_period": 1, "reduction_factor": 2}}},
                         source="test")
    result = run_sweep(spec, tmp_path / "sweep", train_trial=sweep_fakes.scripted_trial,
                       resolve=sweep_fakes.any_config)
    got = {r.overrides["quality"]: (r.status, r.epochs, r.test_acc) for r in result.trials}
    assert got == {
        0.9: ("ok", 4, 0.45),       # first: nothing to compare with
        0.1: ("stopped", 1, None),  # epoch 1: below 0.9
        0.5: ("stopped", 2, None),  # epoch 1: not below median(0.9, 0.1); epoch 2: below 0.9
        0.95: ("ok", 4, 0.475),     # above every cutoff
    }
    for r in result.trials:  # a cut trial really stopped training where the scheduler said
        ran = json.loads((Path(r.run_dir) / "epochs.json").read_text())
        assert ran == list(range(1, r.epochs + 1))
    assert result.complete
    assert [row.overrides["quality"] for row in result.table] == [0.95, 0.9, 0.1, 0.5]
    assert [row.stopped for row in result.table] == [0, 0, 1, 1]


def test_an_interrupted_sweep_resumes_keeping_finished_trials_and_continuing_the_cut_one(
        tmp_path, ray_here):
    config = tiny_config(tmp_path, epochs=3)
    spec = validate_spec({"base": str(config), "grid": {"optimizer.lr": [0.003, 0.01]},
                          "max_concurrent": 1}, source="test")
    second = {}

    def ctrl_c_in_the_second_trial(event):
        if event.kind == "trial_start" and "first" in second:
            second["id"] = event.trial_id
        if event.kind == "trial_end":
            second["first"] = event.trial_id
        if event.kind == "epoch" and event.trial_id == second.get("id") and \
                event.data["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; Tune stops the experiment

    cut = run_sweep(spec, tmp_path / "sweep", on_event=ctrl_c_in_the_second_trial,
                    train_trial=QUICK)
    assert not cut.complete
    status = {r.trial_id: r.status for r in cut.trials}
    assert status == {second["first"]: "ok", second["id"]: "unfinished"}
    run = tmp_path / "sweep" / "trials" / second["id"]
    time.sleep(2)  # any straggler of the stopped trial would write within this
    before = read_jsonl(run / "metrics.jsonl")
    assert 1 <= len(before) < 3 and not (run / "summary.json").exists()
    first_folder = tmp_path / "sweep" / "trials" / second["first"]
    kept = {p.name: p.stat().st_mtime_ns for p in first_folder.iterdir()}

    events = []
    done = resume_sweep(tmp_path / "sweep", on_event=events.append, train_trial=QUICK)
    assert done.complete and [r.status for r in done.trials] == ["ok", "ok"]
    assert {e.trial_id for e in events if e.kind == "trial_start"} == {second["id"]}
    after = read_jsonl(run / "metrics.jsonl")
    assert [r["epoch"] for r in after] == [1, 2, 3]
    assert after[:len(before)] == before  # continued from its checkpoint, not restarted
    assert {p.name: p.stat().st_mtime_ns for p in first_folder.iterdir()} == kept
    assert done.trials[0] == next(r for r in cut.trials if r.trial_id == done.trials[0].trial_id)
