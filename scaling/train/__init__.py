"""Training: expand a study into runs, train each, write the store."""

from scaling.train.executors import (InProcessExecutor, LocalPoolExecutor, SubmititExecutor, default_threads,
                                     execute_run, local_executor, pending, run_study)
from scaling.train.grid import (Family, expand, get_family, model_shapes, plan_rows, register_family, study_root,
                                study_runs)
from scaling.train.loop import eval_steps, train_run
from scaling.train.optim import lr_at
from scaling.train.run_config import RunConfig

__all__ = ["Family", "InProcessExecutor", "LocalPoolExecutor", "RunConfig", "SubmititExecutor", "default_threads",
           "eval_steps", "execute_run", "expand", "get_family", "local_executor", "lr_at", "model_shapes", "pending", "plan_rows", "study_runs",
           "register_family", "run_study", "study_root", "train_run"]
