"""Content hashes of structures: what caches and identities key on (the same crystal
gives the same hash however it was loaded)."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

import numpy as np

from harness.sdk.api import Material


def structure_hash(structure) -> bytes:
    """Content hash of a structure: lattice, fractional coordinates, species and occupancies."""
    return content_hash(
        structure.lattice.matrix, structure.frac_coords, [site_label(site.species.items()) for site in structure]
    )


def site_label(species_occupancies: Iterable[tuple[Any, float]]) -> str:
    """How a site's species and occupancies enter the content hash: "Fe:1" or "Fe2+:0.5,Ni2+:0.5"."""
    return ",".join(f"{sp}:{occ:.6g}" for sp, occ in species_occupancies)


def material_hash(material: Material) -> bytes:
    """The material's content hash: the dataset's own when it gave one, else computed."""
    return material.content_hash or structure_hash(material.structure)


def content_hash(lattice: np.ndarray, frac_coords: np.ndarray, site_labels: Sequence[str]) -> bytes:
    """`structure_hash` from plain arrays, for datasets that keep structures as arrays."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(lattice, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(frac_coords, dtype=np.float64).tobytes())
    h.update("|".join(site_labels).encode())
    return h.digest()


__all__ = ["content_hash", "material_hash", "site_label", "structure_hash"]
