"""Built-in perturbations (see `basic`)."""

from harness import hookimpl

from .basic import MaskIntensity, NoPerturbation, RandomScale, Rotate, SystematicAbsence
from .powder import Noise, PeakBroadening, QRange


@hookimpl
def harness_perturbations():
    return [NoPerturbation, RandomScale, SystematicAbsence, MaskIntensity, Rotate, PeakBroadening, Noise, QRange]
