"""Training and evaluation: the loop, run folders, resume, Ctrl-C, and the library calls the
CLI is a shell over (plan_training, run_training, evaluate_checkpoint)."""

from cnncli.training.callbacks import Callbacks, StartInfo
from cnncli.training.evaluate import EvalReport, Evaluation, evaluate, evaluate_checkpoint
from cnncli.training.folder import BEST, LAST, METRIC_FIELDS, best_epoch
from cnncli.training.interrupt import StopFlag, TrainingInterrupted, deferred_interrupt
from cnncli.training.run import TrainPlan, plan_training, run_training
from cnncli.training.trainer import Trainer

__all__ = [
    "BEST", "LAST", "METRIC_FIELDS", "Callbacks", "EvalReport", "Evaluation", "StartInfo",
    "StopFlag", "TrainPlan", "Trainer", "TrainingInterrupted", "best_epoch", "deferred_interrupt",
    "evaluate", "evaluate_checkpoint", "plan_training", "run_training",
]
