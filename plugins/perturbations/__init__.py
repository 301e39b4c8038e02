"""Built-in perturbations (see `basic`)."""

from harness import hookimpl

from .basic import MaskIntensity, NoPerturbation, RandomScale, Rotate, SystematicAbsence


@hookimpl
def harness_perturbations():
    return [NoPerturbation, RandomScale, SystematicAbsence, MaskIntensity, Rotate]
