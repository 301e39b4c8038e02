"""Structure factors at a fixed set of Miller indices: a plain reference loop and a fast
batched kernel that must agree with it.

X-ray: f_j(s) = Z_j - 41.78214 s^2 sum_i a_i exp(-b_i s^2), s = |g|/2, with pymatgen's
XRDCalculator coefficients. Neutron: f_j = b_j, pymatgen's NDCalculator coherent
scattering lengths (fm). F(g) = sum_j occ_j f_j exp(2 pi i h.r_j); I = |F|^2 / V^2, and
I = 0 beyond the limiting sphere |g| > 2/lambda when asked. g = (h, k, l) . B with B the
crystallographic reciprocal lattice (no 2 pi), Cartesian, 1/angstrom.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from harness import Skip

from .cells import Cell

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

Radiation = Literal["xray", "neutron"]
VALID_N = (3, 4, 27, 125, 343)
_XRAY_PREFACTOR = 41.78214  # pymatgen's constant in f(s)
# Below this fraction of a crystal's strongest reflection an intensity is rounding noise
# of a cancelled sum (a systematic absence, ~1e-30 relative): it is set to exactly 0, so
# that absences encode identically whatever the summation order.
ABSENT = 1e-12


def _zero_absences(intensity: np.ndarray) -> np.ndarray:
    """`intensity` (..., M) with values below ABSENT x the row's maximum set to 0."""
    intensity = np.array(intensity, dtype=float)
    intensity[intensity < ABSENT * intensity.max(axis=-1, keepdims=True)] = 0.0
    return intensity


@dataclass(frozen=True)
class Pattern:
    """Raw diffraction points of one crystal (before encoding)."""

    g: np.ndarray  # (M, 3) Cartesian reciprocal vectors, 1/angstrom
    intensity: np.ndarray  # (M,) |F|^2 / V^2


def miller_indices(n: int) -> np.ndarray:
    """The Miller set of size n, in feature order: the paper's order for n = 3, 4;
    h, k, l ascending (h slowest) for the cubes n = 27, 125, 343."""
    if n == 3:
        return np.eye(3, dtype=np.int64)
    if n == 4:
        return np.vstack([np.zeros((1, 3), dtype=np.int64), np.eye(3, dtype=np.int64)])
    if n in VALID_N:
        m = round(n ** (1 / 3)) // 2
        return np.array(list(itertools.product(range(-m, m + 1), repeat=3)), dtype=np.int64)
    raise ValueError(f"n must be one of {', '.join(map(str, VALID_N))}; got {n!r}")


@lru_cache(maxsize=1)
def xray_table() -> dict[str, np.ndarray]:
    """Element symbol -> (4, 2) Cromer-Mann-like (a_i, b_i), as pymatgen's XRDCalculator:
    its own data file, read without importing `pymatgen.analysis.diffraction.xrd` (which
    imports scipy.stats and matplotlib: seconds in every featurisation worker)."""
    return {
        el: np.asarray(c, dtype=float) for el, c in _pymatgen_diffraction_data("atomic_scattering_params.json").items()
    }


@lru_cache(maxsize=1)
def neutron_table() -> dict[str, float]:
    """Element symbol -> bound coherent scattering length (fm), as pymatgen's NDCalculator."""
    return {el: float(b) for el, b in _pymatgen_diffraction_data("neutron_scattering_length.json").items()}


def _pymatgen_diffraction_data(name: str) -> dict:
    import json
    from importlib.resources import files

    return json.loads(files("pymatgen.analysis.diffraction").joinpath(name).read_text())


def check_species(cell: Cell, radiation: Radiation) -> None:
    """Raise `Skip` naming the first element without scattering data."""
    table = xray_table() if radiation == "xray" else neutron_table()
    what = "X-ray form factor" if radiation == "xray" else "neutron scattering length"
    for entries in cell.species:
        for symbol, z, _ in entries:
            if symbol not in table or (radiation == "xray" and z <= 0):
                raise Skip(f"no {what} for {symbol}")


def reciprocal(lattice: np.ndarray) -> np.ndarray:
    """Rows b1, b2, b3 with a_i . b_j = delta_ij (no 2 pi)."""
    return np.linalg.inv(lattice).T


# ----------------------------------------------------------------------------- reference


def reference_pattern(
    structure: "Structure", hkl: np.ndarray, radiation: Radiation, wavelength: float, limiting_sphere: bool
) -> Pattern:
    """One reflection at a time (numpy over the atoms, as deepKNet and older pymatgen did),
    straight from the pymatgen structure's sites."""
    lattice = structure.lattice
    recip = lattice.reciprocal_lattice_crystallographic.matrix
    volume = lattice.volume
    xtab, ntab = xray_table(), neutron_table()
    fcoords, occus, zs, coeffs, lengths = [], [], [], [], []
    for site in structure:
        for sp, occ in site.species.items():
            fcoords.append(site.frac_coords)
            occus.append(occ)
            zs.append(sp.Z)
            if radiation == "xray":
                coeffs.append(xtab[sp.symbol])
            else:
                lengths.append(ntab[sp.symbol])
    fcoords_a, occus_a, zs_a = np.array(fcoords), np.array(occus), np.array(zs, dtype=float)
    coeffs_a, lengths_a = np.array(coeffs), np.array(lengths)
    g_out, i_out = [], []
    for h in hkl:
        g = h @ recip
        g_norm = float(np.linalg.norm(g))
        if radiation == "xray":
            s2 = (g_norm / 2) ** 2
            fs = zs_a - _XRAY_PREFACTOR * s2 * np.sum(coeffs_a[:, :, 0] * np.exp(-coeffs_a[:, :, 1] * s2), axis=1)
        else:
            fs = lengths_a
        f_hkl = np.sum(fs * occus_a * np.exp(2j * math.pi * (fcoords_a @ h)))
        intensity = float((f_hkl * f_hkl.conjugate()).real) / volume**2
        if limiting_sphere and g_norm > 2 / wavelength:
            intensity = 0.0
        g_out.append(g)
        i_out.append(intensity)
    return Pattern(np.array(g_out), _zero_absences(np.array(i_out)))


# ----------------------------------------------------------------------------- fast kernel


def batch_patterns(
    cells: Sequence[Cell], hkl: np.ndarray, radiation: Radiation, wavelength: float, limiting_sphere: bool
) -> list[Pattern]:
    """All reflections of all crystals at once: one matmul for the phases of every atom,
    form factors once per (crystal, element), a segmented sum per crystal."""
    if not cells:
        return []
    hkl_f = np.asarray(hkl, dtype=float)  # (M, 3)
    recips = np.stack([reciprocal(c.lattice) for c in cells])  # (C, 3, 3)
    g = np.einsum("mi,cij->cmj", hkl_f, recips)  # (C, M, 3)
    g_norm = np.linalg.norm(g, axis=-1)  # (C, M)
    volumes = np.abs(np.linalg.det(np.stack([c.lattice for c in cells])))  # (C,)

    # scatterers: one row per (site, species); element rows: one per (crystal, element)
    frac_rows, weight_rows, elem_rows, starts = [], [], [], []
    elements: list[tuple[int, str, int]] = []
    elem_index: dict[tuple[int, str], int] = {}
    n_rows = 0
    for ci, cell in enumerate(cells):
        starts.append(n_rows)
        for t, entries in enumerate(cell.species):
            sites = cell.frac[cell.types == t]
            if len(sites) == 0:
                continue
            for symbol, z, occ in entries:
                key = (ci, symbol)
                if key not in elem_index:
                    elem_index[key] = len(elements)
                    elements.append((ci, symbol, z))
                frac_rows.append(sites)
                weight_rows.append(np.full(len(sites), occ))
                elem_rows.append(np.full(len(sites), elem_index[key]))
                n_rows += len(sites)
    frac = np.concatenate(frac_rows)  # (S, 3)
    occ = np.concatenate(weight_rows)  # (S,)
    elem = np.concatenate(elem_rows)  # (S,)

    f_elem = _element_factors(elements, g_norm, radiation)  # (E, M)
    weight = occ[:, None] * f_elem[elem]  # (S, M)
    f_hkl = np.add.reduceat(weight * _phases(frac, hkl_f), np.array(starts), axis=0)  # (C, M)
    intensity = (f_hkl.real**2 + f_hkl.imag**2) / volumes[:, None] ** 2
    if limiting_sphere:
        intensity[g_norm > 2 / wavelength] = 0.0
    intensity = _zero_absences(intensity)
    return [Pattern(g[i], intensity[i]) for i in range(len(cells))]


def _phases(frac: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """exp(2 pi i hkl . x) for every site and reflection: (S, M) complex.

    For integer hkl, exp(2 pi i (h x + k y + l z)) is a product of three per-axis factors
    exp(2 pi i h x), and each axis has only a few distinct h: a handful of exponentials per
    site instead of one per (site, reflection)."""
    idx = np.rint(hkl).astype(np.int64)
    if not np.array_equal(idx, hkl):
        return np.exp(2j * math.pi * (frac @ hkl.T))
    out = None
    for axis in range(3):
        lo = int(idx[:, axis].min())
        orders = np.arange(lo, int(idx[:, axis].max()) + 1)
        table = np.exp((2j * math.pi) * frac[:, axis, None] * orders[None, :])  # (S, span)
        factor = table[:, idx[:, axis] - lo]  # (S, M)
        out = factor if out is None else out * factor
    return out


def _element_factors(elements: list[tuple[int, str, int]], g_norm: np.ndarray, radiation: Radiation) -> np.ndarray:
    """f(|g|) for each (crystal, element): (E, M)."""
    crystal = np.array([e[0] for e in elements])
    if radiation == "neutron":
        table = neutron_table()
        b = np.array([table[e[1]] for e in elements])
        return np.broadcast_to(b[:, None], (len(elements), g_norm.shape[1]))
    table = xray_table()
    coeff = np.stack([table[e[1]] for e in elements])  # (E, 4, 2)
    z = np.array([e[2] for e in elements], dtype=float)
    s2 = (g_norm[crystal] / 2) ** 2  # (E, M)
    gauss = np.einsum("ek,ekm->em", coeff[:, :, 0], np.exp(-coeff[:, :, 1, None] * s2[:, None, :]))
    return z[:, None] - _XRAY_PREFACTOR * s2 * gauss


def structure_factors(cell: Cell, hkl: np.ndarray, radiation: Radiation = "xray") -> np.ndarray:
    """Complex F(hkl) of one cell (electrons for X-rays, fm for neutrons), no 1/V: the
    phases that `batch_patterns` squares away, for Fourier synthesis of the density."""
    hkl_f = np.asarray(hkl, dtype=float)
    g_norm = np.linalg.norm(hkl_f @ reciprocal(cell.lattice), axis=1)[None, :]  # (1, M)
    out = np.zeros(len(hkl_f), dtype=complex)
    chunk = max(1, _PHASE_ENTRIES // max(1, len(cell.frac)))  # bounds the (sites, reflections) block
    for t, entries in enumerate(cell.species):
        sites = cell.frac[cell.types == t]
        if len(sites) == 0:
            continue
        phase_sum = np.concatenate(
            [_phases(sites, hkl_f[i : i + chunk]).sum(axis=0) for i in range(0, len(hkl_f), chunk)]
        )
        for symbol, z, occ in entries:
            out += occ * _element_factors([(0, symbol, z)], g_norm, radiation)[0] * phase_sum
    return out


_PHASE_ENTRIES = 4_000_000  # complex entries of one phase block (64 MB)
