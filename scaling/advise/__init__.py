"""Next-run advice: which runs to train so that the answer at the target scale is most certain.

- `design`: the method (a Bayesian c-optimal design over the current fit's draws) and `advise`;
- `targets`: the quantities advice can make certain, as functions of parameter draws;
- `study`: where candidates come from (a size grid, a study spec) and where advised runs go;
- `simulation`, `target_simulation`: does advice pay? Trials on ground-truth laws (bench/advise.py).
"""

from scaling.advise.design import Advice, Candidate, advise, candidate_features, residual_noise, spread_warnings
from scaling.advise.study import (ADVISED_FILE, NEW_SEEDS, advise_study, advised_runs, append_advised, candidate_grid,
                                  spec_candidates)
from scaling.advise.targets import TARGETS, TargetOptions, target_function

__all__ = ["ADVISED_FILE", "Advice", "Candidate", "NEW_SEEDS", "TARGETS", "TargetOptions", "advise", "advise_study",
           "advised_runs", "append_advised", "candidate_features", "candidate_grid", "residual_noise",
           "spec_candidates", "spread_warnings", "target_function"]
