"""Built-in representations: diffraction point clouds and bar codes (see `diffraction`)."""

from harness import hookimpl

from .diffraction import Barcode, NdCloud, XrdCloud


@hookimpl
def harness_representations():
    return [XrdCloud, NdCloud, Barcode]
