"""A TPE sampler whose draws do not depend on where a run was cut.

Optuna's `TPESampler(seed=s)` draws from one random stream for the whole study; a process
that resumes a study starts that stream again, so it explores other parameters than an
uncut run. Here each trial gets a fresh TPE seeded from (study seed, number of finished
trials): TPE itself is a function of the finished trials, so the parameters of the k-th
finished trial are the same however many processes the study took.
"""

from __future__ import annotations

import zlib
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def trial_seed(study_seed: int, n_finished: int) -> int:
    return zlib.crc32(f"{study_seed}|{n_finished}".encode()) & 0x7FFFFFFF


class ReplayableTPESampler(BaseSampler):
    def __init__(self, seed: int, **tpe_options: Any):
        self.seed = seed
        self.options = tpe_options
        self._by_trial: dict[int, TPESampler] = {}  # trial number -> its sampler

    def _sampler(self, study: Study, trial: FrozenTrial) -> TPESampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            n = len(study.get_trials(deepcopy=False, states=FINISHED))
            sampler = self._by_trial[trial.number] = TPESampler(seed=trial_seed(self.seed, n), **self.options)
        return sampler

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._sampler(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._sampler(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._sampler(study, trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._sampler(study, trial).before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values) -> None:
        sampler = self._by_trial.pop(trial.number, None)
        if sampler is not None:
            sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # the seed is the point: nothing to reseed
        pass


def fail_orphaned_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Trials left RUNNING by a process that died: failed, so the count of finished trials
    (and the next trial's seed) is what an uncut run would see. Only the claim holder calls it."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    for t in orphans:
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(orphans)
