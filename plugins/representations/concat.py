"""`concat`: several vector representations side by side, e.g. composition + bar code.

The study's question is how much structure alone decides; the answer needs three rows on
the same splits: composition alone, structure alone, and both. `of` names the parts as
the leaderboard titles them, joined by "+": `"composition+barcode(n=125)"`. Each part is
built by name from the registry the run loaded (so a third-party vector representation
may take part), its columns keep their order and are prefixed with the part's title. A
crystal one part cannot featurise is skipped, with that part's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import tomllib

from harness import VECTOR, Representation, Skip, UserError, create_entry

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


def parse_parts(text: str) -> list[tuple[str, dict[str, Any]]]:
    """'composition+barcode(n=125,cell=conventional)' -> [(name, params), ...]; values are
    read as TOML (numbers, booleans, quoted strings), else kept as bare strings."""
    parts, depth, current = [], 0, ""
    for ch in text:  # split on "+" outside parentheses
        depth += (ch == "(") - (ch == ")")
        if ch == "+" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    out = []
    for part in (p.strip() for p in parts):
        name, _, rest = part.partition("(")
        params: dict[str, Any] = {}
        if rest:
            if not rest.endswith(")"):
                raise UserError(
                    f"representation concat: part {part!r} lacks its closing ')'; write e.g. barcode(n=125)"
                )
            for item in filter(None, (x.strip() for x in rest[:-1].split(","))):
                key, eq, value = item.partition("=")
                if not eq:
                    raise UserError(f"representation concat: {item!r} in {part!r} is not key=value; write e.g. n=125")
                params[key.strip()] = _value(value.strip())
        if not name.strip():
            raise UserError(f'representation concat: of = {text!r} has an empty part; write e.g. "composition+barcode"')
        out.append((name.strip(), params))
    return out


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass
class Concat(Representation):
    name: ClassVar[str] = "concat"
    description: ClassVar[str] = (
        'vector representations side by side: of = "composition+barcode(n=125)" (columns kept in order, '
        "prefixed by each part's title)"
    )
    kind: ClassVar[str] = VECTOR

    of: str = "composition+barcode"
    _parts: list[Representation] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        specs = parse_parts(self.of)
        if len(specs) < 2:
            raise UserError(f"representation concat: of = {self.of!r} names one part; join two or more with '+'")
        self._parts = [
            create_entry("representation", name, params, where=f"concat of = {self.of!r}: ") for name, params in specs
        ]
        for part in self._parts:
            if part.kind != VECTOR:
                raise UserError(
                    f"representation concat: part {part.title!r} is a {part.kind}, not a vector; "
                    "concat joins vector representations only (e.g. composition, barcode)"
                )
        titles = [p.title for p in self._parts]
        if len(set(titles)) < len(titles):
            raise UserError(f"representation concat: of = {self.of!r} names a part twice; name each once")
        # the parts' own versions: a change in any part is a change in the concatenation
        self.version = "1:" + ",".join(f"{p.name}={p.version}" for p in self._parts)  # type: ignore[misc]

    @property
    def parts(self) -> list[Representation]:
        return list(self._parts)

    def columns(self) -> list[str]:
        return [f"{p.title}:{c}" for p in self._parts for c in p.columns()]

    def featurize(self, structure: Structure) -> np.ndarray:
        out = self.featurize_many([structure])[0]
        if isinstance(out, Skip):
            raise out
        return out

    def featurize_many(self, structures: Sequence[Structure]) -> list[np.ndarray | Skip]:
        each = [p.featurize_many(structures) for p in self._parts]
        out: list[np.ndarray | Skip] = []
        for i in range(len(structures)):
            pieces = [got[i] for got in each]
            failed = next((x for x in pieces if isinstance(x, Skip)), None)
            if failed is not None:
                out.append(failed)
            else:
                out.append(np.concatenate([np.asarray(x, dtype=np.float32).ravel() for x in pieces]))
        return out
