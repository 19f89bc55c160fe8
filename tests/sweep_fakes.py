"""Trial functions for the Ray tests that need a trial to behave exactly so (a given accuracy
per epoch, an exception, a dying worker). The tests ship this module to Ray's workers by value
(ray.cloudpickle.register_pickle_by_value), as the workers cannot import tests/."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def any_config(base: str, overrides: Any) -> dict[str, Any]:
    """A resolve seam that accepts every override (the fakes read their own keys)."""
    return {"train": {"epochs": 4, "val_split": 0.1}, "overrides": [list(o) for o in overrides]}


def scripted_trial(base: str, overrides: Any, seed: int | None, run_dir: Path,
                   report_epoch: Any) -> dict[str, Any]:
    """Reports `quality` as val_acc for 4 epochs; `fail: raise` raises, `fail: exit` kills
    its own worker process. Writes the epochs it ran to run_dir/epochs.json."""
    opts = dict(overrides)
    if opts.get("fail") == "raise":
        raise RuntimeError("kaboom\nthe traceback's second line")
    if opts.get("fail") == "exit":
        os._exit(3)
    done = []
    for epoch in range(1, 5):
        done.append(epoch)
        (Path(run_dir) / "epochs.json").write_text(json.dumps(done))
        report_epoch({"epoch": epoch, "val_acc": opts["quality"], "val_loss": None})
    return {"best_val_acc": opts["quality"], "test": {"accuracy": opts["quality"] / 2},
            "epochs": 4}
