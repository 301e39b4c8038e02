"""Built-in tasks: the paper's four property tasks and two symmetry tasks."""

from harness import hookimpl

from .properties import BulkModulusTask, MetallicityTask, ShearModulusTask, StabilityTask
from .spacegroups import ExtinctionGroupTask, PointGroupTask, SpaceGroupTask
from .symmetry import CrystalSystemTask, TrigonalVsHexagonalTask
from .threshold import ThresholdTask


@hookimpl
def harness_tasks():
    return [
        MetallicityTask,
        BulkModulusTask,
        ShearModulusTask,
        StabilityTask,
        CrystalSystemTask,
        TrigonalVsHexagonalTask,
        SpaceGroupTask,
        PointGroupTask,
        ExtinctionGroupTask,
        ThresholdTask,
    ]
