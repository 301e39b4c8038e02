"""The embedded demo dataset: random crystals over all 230 space groups, built offline.

Why generated: the benchmark must run without network or licensed data, and the symmetry
tasks need labels that are exactly right. Each *parent* is a pyxtal random crystal of a
space group drawn evenly per crystal system (so all seven systems, trigonal and hexagonal
included, are well represented); each parent has `variants` near-copies made by element
substitution plus a strain that keeps its symmetry. A family shares `Material.group`, so
a split grouped by parent keeps near-copies on one side. Labels (`crystal_system`,
`spacegroup`, `formula`) come from each crystal's own symmetry (spglib, symprec 0.1),
never from the space group it was generated in.

Deterministic: everything a family needs is drawn from `numpy.random.default_rng([seed,
index])`, so the result does not depend on how families are spread over processes.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import (
    CRYSTAL_SYSTEMS,
    SYMPREC,
    Dataset,
    LoadContext,
    Material,
    UserError,
    code_identity,
    crystal_system,
    read_json,
    symmetry_dataset,
    write_json,
)

log = logging.getLogger(__name__)

# Bump when the generated crystals change for a reason outside this module (the cache keys
# on it, and on this module's code hash: `harness.code_identity`).
CODE_VERSION = "demo-1"

# Elements with X-ray form factors and neutron scattering lengths in pymatgen's tables,
# spread over the periodic table so both kinds of intensity carry information.
SPECIES = tuple(
    "Li Be B C N O F Na Mg Al Si P S Cl K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br "
    "Rb Sr Y Zr Nb Mo Ru Rh Pd Ag Cd In Sn Sb Te I Cs Ba La Ce Nd Gd Hf Ta W Re Os Ir Pt "
    "Au Hg Tl Pb Bi".split()
)

# Space-group numbers of each crystal system.
_SYSTEM_GROUPS = {
    "triclinic": range(1, 3),
    "monoclinic": range(3, 16),
    "orthorhombic": range(16, 75),
    "tetragonal": range(75, 143),
    "trigonal": range(143, 168),
    "hexagonal": range(168, 195),
    "cubic": range(195, 231),
}
assert tuple(_SYSTEM_GROUPS) == CRYSTAL_SYSTEMS

# Crystal system of family i is _SCHEDULE[i % len]: round robin for even coverage.
# Trigonal comes twice because about a third of random trigonal crystals turn out
# hexagonal (atoms on special positions gain a 6-fold axis); with it, each of the seven
# systems ends up with 11-20 % of the materials.
_SCHEDULE = CRYSTAL_SYSTEMS[:5] + ("trigonal",) + CRYSTAL_SYSTEMS[5:]

MAX_ATOMS = 48  # per conventional cell: keeps generation and featurisation quick
MAX_TRIES = 40  # compositions tried per parent before giving up (never reached in practice)
_PARALLEL_ABOVE = 60  # families; below this a process pool costs more than it saves


@dataclass
class Demo(Dataset):
    """Random crystals over all 230 space groups (pyxtal), labelled by spglib; offline."""

    name = "demo"
    default = True  # the dataset of a config that names none
    description = "offline random crystals over all 230 space groups (pyxtal), families of near-copies"

    size: int = 2400  # materials in all
    seed: int = 0
    variants: int = 2  # near-copies per parent (element substitution + symmetric strain)

    def __post_init__(self) -> None:
        if self.size < 1 or self.variants < 0:
            raise UserError(
                f"[dataset] demo: size = {self.size}, variants = {self.variants}; the demo needs "
                "size >= 1 (materials in all) and variants >= 0 (near-copies per parent)"
            )

    def load(self, ctx: LoadContext) -> list[Material]:
        path = self._cache_file(ctx.cache_dir)
        from pymatgen.core import Structure

        cached = read_json(path)  # checksummed JSON: a damaged file is rebuilt, never unpickled
        if cached is not None:
            return [
                Material(r["id"], Structure.from_dict(r["structure"]), r["props"], group=r["group"]) for r in cached
            ]
        materials = self._build(ctx)
        try:
            write_json(
                path,
                [
                    {"id": m.id, "structure": m.structure.as_dict(), "props": dict(m.props), "group": m.group}
                    for m in materials
                ],
            )
        except UserError as exc:  # a full disk: keep the generated set for this run, uncached
            log.warning("demo: %s; the %d generated crystals are used without caching", exc, len(materials))
        return materials

    def content_id(self) -> str:
        """The demo is a pure function of its parameters and the generating libraries."""
        return self._cache_path(Path(".")).stem

    def _cache_path(self, cache_dir: Path) -> Path:
        import pyxtal
        import spglib

        # The crystals depend on pyxtal's version, their labels on spglib's.
        key = {
            "size": self.size,
            "seed": self.seed,
            "variants": self.variants,
            "code": CODE_VERSION,
            "pyxtal": pyxtal.__version__,
            "spglib": spglib.__version__,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return Path(cache_dir) / "demo" / f"demo-{digest}.npz"

    def _cache_file(self, cache_dir: Path) -> Path:
        """The cache file also keys on this module's code (the identity already carries it):
        edited generation code never reuses old crystals."""
        path = self._cache_path(cache_dir)
        return path.with_name(f"{path.stem}-{code_identity(type(self))[:8]}.npz")

    def _build(self, ctx: LoadContext) -> list[Material]:
        per_family = self.variants + 1
        n_families = -(-self.size // per_family)
        jobs = [(self.seed, i, self.variants) for i in range(n_families)]
        families: Any
        if n_families > _PARALLEL_ABOVE and (os.cpu_count() or 1) > 1:
            # fork where there is one: workers start at once and need no importable
            # __main__; they only run pyxtal/spglib, never the caller's threads (torch).
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=min(2, os.cpu_count() or 1),
                mp_context=multiprocessing.get_context(method),
                initializer=_speed_up_pyxtal,
            )
            families = pool.map(make_family, jobs, chunksize=8)
        else:
            pool, families = None, map(make_family, jobs)
        materials: list[Material] = []
        try:
            for i, family in enumerate(ctx.progress(families, total=n_families, description="demo crystals")):
                group = f"demo-{self.seed}-{i:05d}"
                for v, (structure, props) in enumerate(family):
                    materials.append(Material(f"{group}-{v}", structure, props, group=group))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return materials[: self.size]


# --------------------------------------------------------------------------- generation
# Module-level functions: the process pool pickles them by name.


@functools.cache
def _default_tolerances():
    """pyxtal's default minimum-distance table (it only reads it; about 10 ms to build)."""
    from pyxtal.tolerance import Tol_matrix

    return Tol_matrix(prototype="atomic")


def _speed_up_pyxtal() -> None:
    """Worker initializer: halve pyxtal's generation time, same results.

    pyxtal's `check_images` builds a fresh default `Tol_matrix` (about 10 ms) on every
    call even when an explicit `tol` makes it unused; its Wyckoff merging calls it with
    `tol` thousands of times. Handing it one prebuilt default matrix changes nothing but
    the time. Only done inside the pool's own processes, never in the caller's."""
    import pyxtal.symmetry

    original = pyxtal.symmetry.check_images
    default = _default_tolerances()

    def check_images(*args, **kwargs):
        if len(args) < 5 and "tm" not in kwargs:
            kwargs["tm"] = default
        return original(*args, **kwargs)

    pyxtal.symmetry.check_images = check_images


def make_family(job: tuple[int, int, int]) -> list[tuple[Any, dict[str, Any]]]:
    """A parent and its variants, each with its spglib labels."""
    seed, index, variants = job
    rng = np.random.default_rng([seed, index])
    system = _SCHEDULE[index % len(_SCHEDULE)]
    parent = random_parent(rng, system)
    members = [parent] + [make_variant(parent, rng) for _ in range(variants)]
    return [(s, labels(s)) for s in members]


def labels(structure) -> dict[str, Any]:
    number = int(symmetry_dataset(structure, SYMPREC).number)
    return {
        "crystal_system": crystal_system(number),
        "spacegroup": number,
        "formula": structure.composition.reduced_formula,
    }


def random_parent(rng: np.random.Generator, system: str):
    """A pyxtal random crystal of a random space group of `system`."""
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    for _ in range(MAX_TRIES):
        number = int(rng.choice(_SYSTEM_GROUPS[system]))
        group = Group(number)
        counts = _wyckoff_counts(rng, group)
        if counts is None or not group.check_compatible(counts)[0]:
            continue
        species = [str(e) for e in rng.choice(SPECIES, size=len(counts), replace=False)]
        crystal = pyxtal()
        try:
            crystal.from_random(
                3,
                number,
                species,
                counts,
                factor=float(rng.uniform(1.0, 1.3)),  # volume: atomic volumes times this
                random_state=int(rng.integers(2**31)),
                tm=_default_tolerances(),  # pyxtal's default, built once, not per crystal
            )
        except Exception:  # pyxtal signals incompatible or crowded cells in many ways
            continue
        if crystal.valid:
            return crystal.to_pymatgen()
    raise RuntimeError(f"demo: no {system} crystal after {MAX_TRIES} tries")


def _wyckoff_counts(rng: np.random.Generator, group) -> list[int] | None:
    """Atoms per species that fill whole Wyckoff orbits (1-3 species, 1-2 orbits each).

    Fixed-point orbits (no free parameter) can hold one species only once, so each is
    used at most once; smaller orbits are preferred to keep cells small."""
    orbits = [(int(w.multiplicity), w.letter, int(w.get_dof())) for w in group.Wyckoff_positions]
    orbits = [o for o in orbits if o[0] <= MAX_ATOMS // 2]
    if not orbits:
        return None
    n_species = int(rng.choice([1, 2, 3], p=[0.15, 0.45, 0.40]))
    used: set[str] = set()
    counts = []
    for _ in range(n_species):
        count = 0
        for _ in range(int(rng.integers(1, 3))):
            free = [o for o in orbits if o[2] > 0 or o[1] not in used]
            if not free:
                break
            weights = np.array([1.0 / o[0] for o in free])
            mult, letter, dof = free[int(rng.choice(len(free), p=weights / weights.sum()))]
            used.add(letter)
            count += mult
        if count == 0:
            return None
        counts.append(count)
    return counts if sum(counts) <= MAX_ATOMS else None


def make_variant(parent, rng: np.random.Generator):
    """Same arrangement, other elements, strained without breaking symmetry.

    Elements are swapped one-to-one (distinct stay distinct); cell lengths that are equal
    by symmetry (a = b in tetragonal, ...) get the same stretch (within +/- 3 %) and angles
    stay, so every symmetry operation of the conventional cell survives. The volume
    follows the new atoms' sizes as pyxtal estimates them, then grows if two atoms ended
    up closer than pyxtal would allow."""
    from pymatgen.core import Lattice, Structure

    old = sorted({site.specie.symbol for site in parent})
    new = [str(e) for e in rng.choice(SPECIES, size=len(old), replace=False)]
    swap = dict(zip(old, new))
    species = [swap[site.specie.symbol] for site in parent]

    stretch: dict[float, float] = {}
    lengths = []
    for length in parent.lattice.abc:
        # lengths equal to 1e-6 share one factor
        ref = next((x for x in stretch if abs(x - length) <= 1e-6 * length), None)
        if ref is None:
            ref = length
            stretch[length] = float(rng.uniform(0.97, 1.03))
        lengths.append(length * stretch[ref])
    lattice = Lattice.from_parameters(*lengths, *parent.lattice.angles)

    volume = _expected_volume(species) / _expected_volume([s.specie.symbol for s in parent])
    variant = Structure(lattice, species, parent.frac_coords)
    variant.scale_lattice(parent.volume * volume)
    return _spread(variant)


def _radii(symbol: str) -> tuple[float, float]:
    """(covalent, van der Waals) radius in Angstrom, from pyxtal's own table."""
    from pyxtal.database.element import Element

    element = Element(symbol)
    return float(element.covalent_radius), float(element.vdw_radius)


def _expected_volume(symbols) -> float:
    """pyxtal's expected cell volume for these atoms (up to its random `factor`): each
    atom a sphere whose volume is uniform between its covalent and vdW spheres."""
    return float(sum(4 / 3 * np.pi * (_radii(s)[0] ** 3 + _radii(s)[1] ** 3) / 2 for s in symbols))


def _spread(structure):
    """Scale the cell up until no two atoms are closer than half the sum of their
    covalent radii (pyxtal's own criterion for a valid random crystal)."""
    radii = np.array([_radii(site.specie.symbol)[0] for site in structure])
    distances = structure.distance_matrix
    np.fill_diagonal(distances, min(structure.lattice.abc))  # an atom and its own image
    ratio = float(np.min(distances / (0.5 * (radii[:, None] + radii[None, :]))))
    if ratio < 1:
        structure.scale_lattice(structure.volume / ratio**3 * 1.001)
    return structure
