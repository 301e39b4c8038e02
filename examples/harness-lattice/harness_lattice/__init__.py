"""An example third-party plugin with one entry of each kind but perturbations:

- dataset `random_cells`: generated one-atom cells (offline, seeded);
- task `compact`: is the volume per atom below a threshold;
- representation `lattice`: the six lattice parameters of the standard cell;
- model `logistic`: scikit-learn's logistic regression, persisted as JSON.

Each module imports `harness` and nothing under it; this file is the whole integration.
"""

from harness import hookimpl

from .dataset import RandomCells
from .model import Logistic
from .representation import LatticeParameters
from .task import Compact


@hookimpl
def harness_datasets():
    return [RandomCells]


@hookimpl
def harness_tasks():
    return [Compact]


@hookimpl
def harness_representations():
    return [LatticeParameters]


@hookimpl
def harness_models():
    return [Logistic]
