"""Everything that touches Ray: the session, the trial wrapper, the scheduler and the recorder.

Imported only once Ray is known to be installed (cnncli.sweep.runner.require_ray).

- `ray_session` starts Ray embedded (no dashboard, quiet, its temp folder under /tmp, removed
  afterwards) or connects to a cluster by address; either way every worker of the job gets
  OPENBLAS/OMP/MKL_NUM_THREADS = cpus_per_trial in its environment before numpy is imported.
- `run_trials` runs the trials as one Tune experiment, one trial per Tune trial, with
  `cpus_per_trial` CPUs each, optionally cut early by ASHA on validation accuracy per epoch.
- Each trial reports every epoch's metrics row, then one final report carrying its summary
  or its one-line failure (failures are caught in the trial, so Tune sees no error and the
  sweep goes on); the driver-side `_Recorder` turns those into TrialRecords as trials end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from cnncli.errors import CnnError
from cnncli.sweep.expand import Trial
from cnncli.sweep.results import TrialRecord, append_record
from cnncli.sweep.spec import SweepSpec
from cnncli.sweep.trial import blas_threads

#: the environment variables that set BLAS/OpenMP threads in a trial's worker process
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: the key of a trial's last report: JSON of {status, summary | error, blas_threads}
FINAL = "cnncli_final"


@contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the block only (those not already set by the user)."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Tune logs every failed trial with its traceback; the sweep records it as one line."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def ray_session(address: str | None, threads: int) -> Iterator[None]:
    """Ray for the duration of the block: connected to `address` (or $RAY_ADDRESS), else
    started on this machine. A Ray the caller already initialised is used as it is."""
    import ray

    if ray.is_initialized():
        if address:
            raise CnnError(f"cannot connect to the Ray cluster at {address}: this process "
                           "already runs Ray (ray.init was called); the sweep uses that one, "
                           "so pass no address")
        yield
        return
    common: dict[str, Any] = {
        "logging_level": logging.ERROR,
        "log_to_driver": False,  # failures come back as records, not as worker output
        "runtime_env": {"env_vars": {name: str(threads) for name in THREAD_VARS}},
    }
    address = address or os.environ.get("RAY_ADDRESS") or None
    temp = None
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CnnError(
                f"cannot connect to the Ray cluster at {address}: {one_line(exc, 200)} (a "
                "cluster with token authentication also needs RAY_AUTH_MODE=token and its "
                "token in $RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None
    else:
        temp = tempfile.mkdtemp(prefix="cnncli-ray-")  # short: Ray's socket paths are limited
        try:
            with _env(RAY_USAGE_STATS_ENABLED="0"):
                ray.init(include_dashboard=False, _temp_dir=temp, **common)
        except Exception as exc:  # e.g. its raylet not registered within Ray's fixed 30 s
            ray.shutdown()  # what did start is stopped again
            _remove(temp)
            raise CnnError(f"Ray did not start on this machine: {one_line(exc, 200)} (a "
                           "machine too busy to start it in time? run the sweep again)"
                           ) from None
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            _remove(temp)


def _remove(folder: str, tries: int = 10) -> None:
    """Remove Ray's temp folder; its processes may still write a log line as they end."""
    for _ in range(tries):
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            return
        time.sleep(0.5)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds when nothing listens at a host:port address (ray.init would retry a
    refused connection for many minutes); other forms (auto, ray://...) go to Ray as they are."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise CnnError(f"cannot connect to the Ray cluster at {address}: "
                       f"{exc.strerror or exc} (is `ray start --head` running there?)") from None


# -- the trial, in the worker -----------------------------------------------------------------


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs besides its id; shipped once to the workers."""

    trials: dict[str, Trial]
    base: str
    train_trial: Callable[..., dict[str, Any]]
    trials_dir: str
    cwd: str  # the driver's working folder, so relative paths in configs mean the same


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as the one-line reason a failed trial records."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not isinstance(exc, CnnError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def worker_failure(text: str) -> str:
    """Tune's error file of a trial whose worker died -> one line: what happened and why.

    The file holds 'Failure # 1 (occurred at ...)' and then the exception, e.g. 'The actor
    died unexpectedly before finishing this task.' followed by Ray's details, among them
    'Worker exit detail: <why>. Some common causes include: ...'.
    """
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith("Failure #")]
    what = lines[0] if lines else "the trial's worker failed"
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|$)", text)
    why = f" ({detail.group(1).strip()})" if detail else ""
    message = f"{what}{why}"
    return message if len(message) <= 300 else message[:297] + "..."


def _trainable(config: dict[str, Any], context: TrialContext) -> None:
    trial = context.trials[config["trial_id"]]
    if os.path.isdir(context.cwd):
        os.chdir(context.cwd)
    threads = blas_threads()

    def report_epoch(row: dict[str, Any]) -> None:
        metrics = {k: v for k, v in row.items() if v is not None}  # ASHA cannot rank a None
        tune.report({**metrics, "blas_threads": threads})

    run_dir = Path(context.trials_dir) / trial.trial_id
    final: dict[str, Any]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        summary = context.train_trial(context.base, trial.config_overrides(), trial.seed,
                                      run_dir, report_epoch)
        final = {"status": "ok", "summary": summary}
    except Exception as exc:  # a failure stays in its trial (Tune's stop is a SystemExit)
        final = {"status": "failed", "error": one_line(exc)}
    final["blas_threads"] = threads
    tune.report({FINAL: json.dumps(final, default=str)})


# -- the driver side --------------------------------------------------------------------------


class _Asha(ASHAScheduler):
    """ASHA that remembers which trials it cut, so a trial ended by Ctrl-C is not taken for
    one the scheduler stopped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cut: set[str] = set()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP:
            self.cut.add(trial.config["trial_id"])
        return action


class _Recorder(tune.Callback):
    """Collects each trial's epochs and final report; writes its record when it ends."""

    def __init__(self, context: TrialContext, sweep_dir: Path, scheduler: _Asha | None,
                 on_event: Callable[[str, str, dict[str, Any]], None]) -> None:
        self.context, self.sweep_dir, self.scheduler = context, sweep_dir, scheduler
        self.on_event = on_event
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.final: dict[str, dict[str, Any]] = {}
        self.seconds: dict[str, float] = {}
        self.records: dict[str, TrialRecord] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tid = trial.config["trial_id"]
        self.rows.setdefault(tid, [])
        self.on_event("trial_start", tid, {"trial": self.context.trials[tid].describe()})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        tid = trial.config["trial_id"]
        if "time_total_s" in result:  # Tune's clock of the trial function (not its queueing)
            self.seconds[tid] = float(result["time_total_s"])
        if FINAL in result:
            self.final[tid] = json.loads(result[FINAL])
        elif "epoch" in result:
            row = {k: result[k] for k in ("epoch", "train_loss", "train_acc", "val_loss",
                                          "val_acc", "seconds", "blas_threads") if k in result}
            self.rows.setdefault(tid, []).append(row)
            self.on_event("epoch", tid, row)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The worker itself failed (a Python error is caught in the trial): killed, crashed,
        out of memory. Tune has just written the error to the trial's local error file."""
        try:
            text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace")
        except (OSError, TypeError):
            text = ""
        self._end(trial, error=worker_failure(text))

    def _end(self, trial: Any, error: str | None) -> None:
        tid = trial.config["trial_id"]
        rows, final = self.rows.get(tid, []), self.final.get(tid)
        rec = TrialRecord.unfinished(self.context.trials[tid],
                                     Path(self.context.trials_dir) / tid)
        rec.seconds = round(self.seconds[tid], 3) if tid in self.seconds else None
        vals = [r["val_acc"] for r in rows if r.get("val_acc") is not None]
        rec.best_val_acc = max(vals) if vals else None
        rec.epochs = int(rows[-1]["epoch"]) if rows else 0
        rec.blas_threads = rows[0].get("blas_threads") if rows else None
        if final is not None:
            rec.blas_threads = final.get("blas_threads")
            if final["status"] == "ok":
                summary = final.get("summary") or {}
                rec.status = "ok"
                rec.best_val_acc = summary.get("best_val_acc", rec.best_val_acc)
                rec.test_acc = (summary.get("test") or {}).get("accuracy")
                rec.epochs = summary.get("epochs", rec.epochs)
                rec.data, rec.cnncli = summary.get("data"), summary.get("cnncli")
            else:
                rec.status, rec.error = "failed", final.get("error")
        elif error is not None:
            rec.status, rec.error = "failed", error
        elif self.scheduler is not None and tid in self.scheduler.cut:
            rec.status = "stopped"
        else:
            return  # ended without finishing (the sweep was interrupted): --resume runs it
        self.records[tid] = rec
        append_record(self.sweep_dir, rec)
        self.on_event("trial_end", tid, {"status": rec.status, "best_val_acc": rec.best_val_acc,
                                         "test_acc": rec.test_acc, "error": rec.error})


def run_trials(
    spec: SweepSpec,
    trials: Sequence[Trial],
    context: TrialContext,
    sweep_dir: Path,
    *,
    address: str | None,
    storage: str,
    max_epochs: int,
    on_event: Callable[[str, str, dict[str, Any]], None],
) -> dict[str, TrialRecord]:
    """Run these trials as one Tune experiment; the records of the trials that finished."""
    scheduler = None
    if spec.early_stopping is not None:
        asha = spec.early_stopping.asha
        max_t = asha.max_t or max(max_epochs, asha.grace_period)
        # stop_last_trials=False: a trial past the last rung finishes its own train.epochs
        scheduler = _Asha(time_attr="epoch", metric="val_acc", mode="max", max_t=max_t,
                          grace_period=asha.grace_period,
                          reduction_factor=asha.reduction_factor, stop_last_trials=False)
    recorder = _Recorder(context, sweep_dir, scheduler, on_event)
    trainable = tune.with_resources(tune.with_parameters(_trainable, context=context),
                                    {"cpu": spec.cpus_per_trial})

    def name_of(t: Any) -> str:
        return str(t.config["trial_id"])

    # RAY_AIR_NEW_OUTPUT=0: the new output engine prints a banner even at verbose=0;
    # strict metric checking would refuse the final report, which carries no val_acc
    quiet = _env(RAY_AIR_NEW_OUTPUT="0", TUNE_DISABLE_STRICT_METRIC_CHECKING="1")
    with ray_session(address, spec.cpus_per_trial), quiet, _quiet_logger("ray.tune"):
        tune.Tuner(
            trainable,
            param_space={"trial_id": tune.grid_search([t.trial_id for t in trials])},
            # reuse_actors: one worker process trains trial after trial; a process per trial
            # cost ~5 s each here (Ray's worker start-up and the imports)
            tune_config=tune.TuneConfig(
                scheduler=scheduler, max_concurrent_trials=spec.max_concurrent,
                reuse_actors=True, trial_name_creator=name_of, trial_dirname_creator=name_of),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}", storage_path=storage,
                verbose=0, callbacks=[recorder]),
        ).fit()
    return recorder.records
