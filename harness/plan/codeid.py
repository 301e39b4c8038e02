"""The code identity of a plugin entry: a hash of the source that computes it.

An entry's declared `version` is easy to forget to bump, and a forgotten bump silently
reuses results and features computed by old code. So identities also carry a hash of
the code: the module defining the entry class (and of each module defining a class in its
MRO), with the modules of the same top-level package they import, read as syntax trees,
so that comments, docstrings and formatting do not count. Other entry classes defined in
the same module are left out unless the kept code names them: editing one representation
does not rerun the studies of its neighbour.

Modules installed in site-packages (a released third-party distribution) count by their
distribution's name and version instead of their source; a module whose source cannot be
read counts by its distribution's version too, else not at all. The harness core
(`harness.*`) is covered by the harness version and `FEATURE_CODE_VERSION`.

Each distinct source text is parsed once and its per-statement hashes kept in the cache
folder (`code/`), so a warm run reads them instead of parsing every plugin module.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import site
import sys
import sysconfig
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

CORE = "harness"


def code_identity(cls: type) -> str:
    """A short hash of the code behind entry class `cls` ("" when none can be read)."""
    try:
        return _code_identity(cls)
    except TypeError:  # an unhashable or odd class object: identity by declared version only
        return ""


@cache
def _code_identity(cls: type) -> str:
    mro = [c for c in inspect.getmro(cls) if _counted(c.__module__)]
    keep: dict[str, set[str]] = {}
    for c in mro:
        keep.setdefault(c.__module__, set()).add(c.__qualname__.split(".")[0])
    parts: dict[str, str] = {}
    todo = list(keep)
    while todo:
        name = todo.pop()
        if name in parts:
            continue
        fingerprint, imports = _module_code(name, frozenset(keep.get(name, ())))
        parts[name] = fingerprint
        top = name.split(".")[0]
        todo += [m for m in imports if m.split(".")[0] == top and m not in parts]
    if not any(parts.values()):
        return ""
    blob = "\n".join(f"{k}={v}" for k, v in sorted(parts.items()))
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def _counted(module: str) -> bool:
    return module not in ("builtins", "abc") and module.split(".")[0] != CORE


def _module_code(name: str, keep: frozenset[str]) -> tuple[str, list[str]]:
    """(fingerprint, same-package modules it imports) of one module, read from its file
    (never imported here: a module not loaded yet counts the same as a loaded one)."""
    path = _source_file(name)
    installed = _installed_version(name, path)
    if installed:
        return installed, []
    try:
        source = path.read_bytes() if path else None
    except OSError:
        source = None
    if source is None:
        return _distribution_version(name), []
    package = name if path and path.name == "__init__.py" else name.rpartition(".")[0]
    info = _module_info(source, package)
    if info is None:  # not parseable: its bytes count
        return hashlib.blake2b(source, digest_size=8).hexdigest(), []
    nodes, imports = info
    dropped = _other_entries(nodes, sys.modules.get(name), keep) if keep else set()
    h = hashlib.blake2b(digest_size=8)
    for class_name, digest, _ in nodes:
        if class_name not in dropped:
            h.update(digest.encode())
    return h.hexdigest(), _resolve(imports)


def _other_entries(nodes: list, module: ModuleType | None, keep: frozenset[str]) -> set[str]:
    """Top-level entry classes other than `keep` that the kept code never names: left out,
    so that editing one entry does not rerun the studies of its neighbours."""
    from harness.sdk.api import Entry

    if module is None:
        return set()
    others = {
        c
        for c, _, _ in nodes
        if c and c not in keep and isinstance(getattr(module, c, None), type) and issubclass(getattr(module, c), Entry)
    }
    while True:
        named = {n for c, _, refs in nodes if c not in others for n in refs}
        back = named & others
        if not back:
            return others
        others -= back


def _module_info(source: bytes, package: str) -> tuple[list, list] | None:
    """Per top-level statement (class name or "", hash of its syntax tree without
    docstrings, top-level class names it mentions), and the modules imported anywhere:
    parsed once per distinct source, remembered in the cache folder."""
    key = hashlib.blake2b(source + b"\0" + package.encode() + _FORMAT, digest_size=16).hexdigest()
    if key in _INFO:
        return _INFO[key]
    from harness.services.cache import read_json, write_json
    from harness.services.errors import UserError
    from harness.services.paths import cache_dir

    path = cache_dir(writable=False) / "code" / f"{key}.npz"
    stored = read_json(path) if path.exists() else None
    if stored is None:
        stored = _parse(source, package)
        try:
            write_json(path, stored)
        except UserError:  # a read-only cache: parse again next time
            pass
    info = None if stored == "unparseable" else ([tuple(n) for n in stored[0]], [tuple(i) for i in stored[1]])
    _INFO[key] = info
    return info


_FORMAT = b"codeid-1"  # bump when _parse's output changes
_INFO: dict[str, Any] = {}


def _parse(source: bytes, package: str) -> Any:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return "unparseable"
    from harness.sdk import hookspecs

    hooks = {n for n in dir(hookspecs) if n.startswith("harness_")}
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    nodes = []
    for node in tree.body:
        if _is_string(node) or (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in hooks):
            continue  # the module docstring; hook implementations only list the entries
        _strip_docstrings(node)
        named = set()
        for n in ast.walk(node):
            if isinstance(n, ast.Name):
                named.add(n.id)
            elif isinstance(n, ast.Attribute):
                named.add(n.attr)
        digest = hashlib.blake2b(ast.dump(node, annotate_fields=False).encode(), digest_size=8).hexdigest()
        nodes.append([node.name if isinstance(node, ast.ClassDef) else "", digest, sorted(named & classes)])
    return [nodes, _imports(tree, package)]


def _is_string(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _strip_docstrings(tree: ast.AST) -> None:
    """Remove every statement that is only a string (docstrings and the like)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and any(_is_string(s) for s in body):
            node.body = [s for s in body if not _is_string(s)] or [ast.Pass()]  # type: ignore[attr-defined]


def _source_file(name: str) -> Path | None:
    """The .py file of module `name`: its `__file__` when loaded, else found under its top
    package's folders."""
    module = sys.modules.get(name)
    if module is not None:
        try:
            found = inspect.getsourcefile(module)
        except TypeError:  # built-in or frozen
            return None
        return Path(found) if found else None
    top, _, rest = name.partition(".")
    package = sys.modules.get(top)
    for folder in getattr(package, "__path__", None) or ():
        base = Path(folder).joinpath(*rest.split(".")) if rest else Path(folder)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _imports(tree: ast.Module, package: str) -> list[tuple[str, list[str] | None]]:
    """(module, names) imported anywhere in `tree`, relative imports resolved against
    `package`; names is None for `import module`."""
    out: list[tuple[str, list[str] | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.append((base, [a.name for a in node.names]))
    return out


def _resolve(imports: list) -> list[str]:
    """The modules the imports name: `from a import b` is `a.b` when that is a module,
    else `a` (so `from . import cells` counts cells, not the package's other modules)."""
    out: list[str] = []
    for base, names in imports:
        if names is None:
            out.append(base)
            continue
        submodules = [f"{base}.{n}" for n in names if _source_file(f"{base}.{n}")]
        out += submodules
        if len(submodules) < len(names):  # names defined in `base` itself
            out.append(base)
    return list(dict.fromkeys(out))


@lru_cache(maxsize=1)
def _site_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths().get(k, "") for k in ("purelib", "platlib")}
    try:
        dirs |= set(site.getsitepackages()) | {site.getusersitepackages()}
    except AttributeError:  # some embedded interpreters
        pass
    return tuple(str(Path(d).resolve()) for d in dirs if d)


def _installed_version(name: str, path: Path | None) -> str:
    """ "dist==version" for a module installed in site-packages, "" otherwise (editable
    installs and plain folders are hashed from their source)."""
    if path is None:
        return ""
    resolved = str(path.resolve())
    if not any(resolved.startswith((d + "/", d + "\\")) for d in _site_dirs()):
        return ""
    return _distribution_version(name)


def _distribution_version(name: str) -> str:
    top = name.split(".")[0]
    for dist in _distributions().get(top, []):
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


@lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()
