"""Built-in representations: diffraction point clouds and bar codes (see `diffraction`)."""

from harness import hookimpl

from .composition import Composition
from .concat import Concat
from .density import DensityCloud, DensityGrid
from .diffraction import Barcode, NdCloud, XrdCloud
from .powder import PowderPattern


@hookimpl
def harness_representations():
    return [XrdCloud, NdCloud, Barcode, DensityCloud, DensityGrid, PowderPattern, Composition, Concat]
