"""The compact form of many structures (a few arrays) and its cache file.

A cold load stores lattices, fractional coordinates, species and props per material; a
warm load rebuilds `Structure` objects from them only when asked for (`Material.lazy`).
The cache is an `.npz` of plain arrays plus JSON: loading it executes nothing
(`allow_pickle=False`), and zip's checksums catch a damaged file.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import zipfile
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness import Material

log = logging.getLogger(__name__)

CODE_VERSION = "3"  # bump when parsing or the cache layout changes
_ARRAYS = ("lattices", "coords", "offsets", "site_species")


def compact_structure(structure) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(lattice matrix, fractional coordinates, per-site ((species, occupancy), ...))."""
    species = tuple(tuple((str(sp), float(occ)) for sp, occ in site.species.items()) for site in structure)
    return (
        np.asarray(structure.lattice.matrix, dtype=np.float64),
        np.asarray(structure.frac_coords, dtype=np.float64),
        species,
    )


def pack(records: list[tuple[str, tuple, dict]]) -> dict[str, Any]:
    """Many compact structures as a few arrays: fast to store and to load."""
    table: dict[tuple, int] = {}
    site_species: list[int] = []
    lattices, coords, offsets = [], [], [0]
    for _, (matrix, frac, species), _ in records:
        lattices.append(matrix)
        coords.append(frac)
        offsets.append(offsets[-1] + len(frac))
        site_species.extend(table.setdefault(sp, len(table)) for sp in species)
    return {
        "ids": [r[0] for r in records],
        "props": [r[2] for r in records],
        "lattices": np.array(lattices, dtype=np.float64).reshape(-1, 3, 3),
        "coords": np.concatenate(coords) if coords else np.zeros((0, 3)),
        "offsets": np.asarray(offsets, dtype=np.int64),
        "species_table": list(table),
        "site_species": np.asarray(site_species, dtype=np.int32),
    }


def unpack(packed: dict[str, Any], props: Callable[[dict], dict] = dict) -> list[Material]:
    """Materials from `pack`'s arrays, with their content hashes. Structures are built
    on first use (`Material.lazy`): a warm run whose features are all cached needs none."""
    from pymatgen.core import Composition

    from harness import content_hash, site_label

    # One Composition per distinct site occupancy, shared by the sites (as pymatgen's own
    # supercells do); labels come from the very objects the structures will hold.
    table = [Composition(dict(sp)) for sp in packed["species_table"]]
    labels = [site_label(c.items()) for c in table]
    offsets, coords, site_species, lattices = (
        packed["offsets"],
        packed["coords"],
        packed["site_species"],
        packed["lattices"],
    )
    builder = _LazyBuilder(lattices, coords, offsets, site_species, table)
    out = []
    for i, material_id in enumerate(packed["ids"]):
        start, stop = offsets[i], offsets[i + 1]
        digest = content_hash(lattices[i], coords[start:stop], [labels[j] for j in site_species[start:stop]])
        out.append(
            Material.lazy(material_id, partial(builder.build, i), props(dict(packed["props"][i])), content_hash=digest)
        )
    return out


class _LazyBuilder:
    """Builds material i's Structure from the shared arrays when it is first asked for."""

    def __init__(self, lattices, coords, offsets, site_species, table):
        self.lattices, self.coords, self.offsets, self.site_species, self.table = (
            lattices,
            coords,
            offsets,
            site_species,
            table,
        )
        self._build = None

    def build(self, i: int):
        from pymatgen.core import Lattice

        start, stop = self.offsets[i], self.offsets[i + 1]
        args = (
            Lattice(self.lattices[i]),
            [self.table[j] for j in self.site_species[start:stop]],
            self.coords[start:stop].copy(),
        )
        if self._build is None:
            self._build = _structure_builder(*args)
        return self._build(*args)


def _structure_builder(lattice, species, frac) -> Any:
    """`_fast_structure` when it builds exactly what pymatgen's constructor builds for a
    sample, else the constructor itself (a pymatgen release may change its internals)."""
    from pymatgen.core import Structure

    def public(lattice, species, frac):
        return Structure(lattice, species, frac)

    try:
        slow, fast = public(lattice, species, frac), _fast_structure(lattice, species, frac)
        same = (
            vars(slow).keys() == vars(fast).keys()
            and all(vars(a).keys() == vars(b).keys() for a, b in zip(slow, fast))
            and slow == fast
            and fast.as_dict() == slow.as_dict()
        )
    except Exception:  # noqa: BLE001 - any surprise means: use the public constructor
        same = False
    if not same:
        log.debug("file: pymatgen internals differ from what the fast path expects; using Structure()")
    return _fast_structure if same else public


def _fast_structure(lattice, species, frac):
    """A Structure from trusted, already validated parts, skipping the per-site checks and
    conversions of `Structure.__init__` (most of a warm load's time). It sets the same
    attributes that constructor sets; `_structure_builder` verifies that before use."""
    from pymatgen.core import PeriodicSite, Structure

    sites = []
    for composition, coords in zip(species, frac):
        site = PeriodicSite.__new__(PeriodicSite)
        site.__dict__.update(
            _lattice=lattice, _frac_coords=coords, _species=composition, _coords=None, properties={}, _label=None
        )
        sites.append(site)
    structure = Structure.__new__(Structure)
    structure.__dict__.update(_lattice=lattice, _sites=tuple(sites), _charge=None, _properties={})
    return structure


def read_cache(cache_file: Path) -> dict[str, Any] | None:
    """What `write_cache` wrote, or None (absent, damaged, or from another code version)."""
    if not cache_file.is_file():
        return None
    try:
        if not zipfile.is_zipfile(cache_file):
            log.debug("file: %s is not a cache of this version; parsing again", cache_file)
            return None
        with np.load(cache_file, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            if meta.get("code") != CODE_VERSION:
                return None
            records = {name: archive[name] for name in _ARRAYS}
    except Exception as exc:  # a torn or foreign file: parse again
        log.warning("file: ignoring unreadable cache %s (%s)", cache_file, exc)
        return None
    records.update(
        ids=meta["ids"],
        props=meta["props"],
        species_table=[tuple(tuple(sp) for sp in site) for site in meta["species_table"]],
    )
    return {
        **meta["extra"],
        "records": records,
        "skipped": [tuple(s) for s in meta["skipped"]],
        "warnings": Counter(meta["warnings"]),
    }


def write_cache(cache_file: Path, data: dict[str, Any]) -> None:
    """Store {"records": pack(...), "skipped": [(id, reason)], "warnings": Counter, ...}."""
    records = data["records"]
    extra = {k: v for k, v in data.items() if k not in ("records", "skipped", "warnings")}
    meta = {
        "code": CODE_VERSION,
        "ids": records["ids"],
        "props": records["props"],
        "species_table": records["species_table"],
        "skipped": list(data.get("skipped", [])),
        "warnings": dict(data.get("warnings", {})),
        "extra": extra,
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        meta=np.frombuffer(json.dumps(meta, default=_plain).encode(), dtype=np.uint8),
        **{name: records[name] for name in _ARRAYS},
    )
    write_atomic(cache_file, buffer.getvalue())


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in props, as JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in the dataset cache")


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename: an interruption never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(data)
        tmp = handle.name
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # like any other file the user writes
    os.replace(tmp, path)
