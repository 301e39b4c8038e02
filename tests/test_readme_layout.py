"""The README's layout section names every module and folder of the core, so a newcomer's
map of the house stays true when a module is added, moved or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_layout_names_every_module_of_the_core():
    text = _layout()
    named = set(re.findall(r"[\w]+\.py", text)) | set(re.findall(r"([\w]+)/", text))
    core = ROOT / "harness"
    modules = {p.name for p in core.rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts}
    folders = {p.name for p in core.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert not modules - named, f"README's layout misses {sorted(modules - named)}"
    assert not folders - named, f"README's layout misses the folders {sorted(folders - named)}"
    stale = {n for n in re.findall(r"[\w]+\.py", text) if n != "__init__.py" and not n.startswith("test_")} - modules
    assert not stale, f"README's layout names modules that do not exist: {sorted(stale)}"
