"""Families of materials held out of training (`hold_out` in a dataset's config).

The pattern language, as the paper writes a family:

- `formula`: a reduced-formula template of element symbols and placeholders, e.g.
  "ABO3" with `placeholders = ["A", "B"]`. Placeholders must be declared, because the
  paper's letters collide with element symbols (B is boron). A material matches when its
  reduced composition (pymatgen, oxidation states merged) has the template's fixed
  elements with the template's amounts, and its other elements can be given to the
  placeholders one each, distinct, with equal amounts: SrTiO3 and Ba2Ti2O6 match ABO3;
  SrO, SrTiO2N and Sr2TiO4 do not. "A2B2O6" is the same template as "ABO3".
- `anonymized`: pymatgen's `Composition.anonymized_formula` (e.g. "ABC3": any three
  elements in 1:1:3).
- `spacegroup`: international numbers, found by spglib at `symprec` on the structure.
- `ids`: material ids.

Every criterion given must hold.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import reduce
from typing import Sequence

from harness.sdk.api import Material
from harness.services.config import HoldOutSpec
from harness.services.errors import UserError

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)")
_TOL = 1e-6


def parse_template(formula: str, placeholders: Sequence[str]) -> tuple[dict[str, float], list[float]]:
    """(fixed element -> amount, placeholder amounts), reduced by the amounts' common divisor."""
    from pymatgen.core import Element

    pos, tokens = 0, []
    for m in _TOKEN.finditer(formula):
        if m.start() != pos:
            break
        tokens.append((m.group(1), float(m.group(2)) if m.group(2) else 1.0))
        pos = m.end()
    if pos != len(formula) or not tokens:
        raise UserError(
            f"hold_out formula {formula!r} is not a formula template; write element symbols and "
            'placeholders with amounts, e.g. formula = "ABO3", placeholders = ["A", "B"]'
        )
    amounts: Counter = Counter()
    for symbol, amount in tokens:
        if symbol not in placeholders and not Element.is_valid_symbol(symbol):
            raise UserError(
                f"hold_out formula {formula!r}: {symbol!r} is neither an element nor a declared "
                f"placeholder; add it to placeholders = [...]"
            )
        amounts[symbol] += amount
    unused = sorted(set(placeholders) - set(amounts))
    if unused:
        raise UserError(f"hold_out formula {formula!r}: placeholder {unused[0]!r} does not occur in it; remove it")
    scale = _common_divisor(list(amounts.values()))
    fixed = {s: a / scale for s, a in amounts.items() if s not in placeholders}
    free = sorted(a / scale for s, a in amounts.items() if s in placeholders)
    return fixed, free


def _common_divisor(amounts: list[float]) -> float:
    if all(abs(a - round(a)) < _TOL for a in amounts):
        return float(reduce(math.gcd, (int(round(a)) for a in amounts)))
    return 1.0


def matches_template(composition, fixed: dict[str, float], free: list[float]) -> bool:
    amounts = composition.get_el_amt_dict()
    scale = _common_divisor(list(amounts.values()))
    amounts = {el: a / scale for el, a in amounts.items()}
    for el, a in fixed.items():
        if abs(amounts.get(el, 0.0) - a) > _TOL:
            return False
    rest = sorted(a for el, a in amounts.items() if el not in fixed)
    return len(rest) == len(free) and all(abs(x - y) <= _TOL for x, y in zip(rest, free))


class Family:
    """Membership test of one `hold_out` entry."""

    def __init__(self, spec: HoldOutSpec):
        self.spec = spec
        self.template = parse_template(spec.formula, spec.placeholders) if spec.formula else None
        if spec.placeholders and len(set(spec.placeholders)) != len(spec.placeholders):
            raise UserError(f"hold_out {spec.label!r}: placeholders repeat a name; list each once")
        self.ids = set(spec.ids)
        self.spacegroups = set(spec.spacegroup)

    def __contains__(self, material: Material) -> bool:
        s = self.spec
        if self.ids and material.id not in self.ids:
            return False
        if self.template or s.anonymized:
            composition = material.structure.composition
            if self.template and not matches_template(composition, *self.template):
                return False
            if s.anonymized and composition.anonymized_formula != s.anonymized:
                return False
        if self.spacegroups:
            from harness.prepare.grouping import spacegroup_number

            try:  # the shared analysis (pymatgen's angle tolerance, as SpacegroupAnalyzer's)
                number = spacegroup_number(material.structure, s.symprec)
            except Exception:  # noqa: BLE001 - spglib finds no symmetry: not in any listed group
                return False
            if number not in self.spacegroups:
                return False
        return True


def members(spec: HoldOutSpec, materials: Sequence[Material]) -> list[int]:
    """Positions of the family's members among `materials`."""
    family = Family(spec)
    return [i for i, m in enumerate(materials) if m in family]
