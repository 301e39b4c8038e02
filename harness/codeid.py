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
        source = path.read_text(encoding="utf-8") if path else None
    except (OSError, UnicodeDecodeError):
        source = None
    if source is None:
        return _distribution_version(name), []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return hashlib.blake2b(source.encode(), digest_size=8).hexdigest(), []
    _drop_hook_functions(tree)
    if keep and name in sys.modules:
        _drop_other_entries(tree, sys.modules[name], keep)
    _strip_docstrings(tree)
    dump = ast.dump(tree, annotate_fields=False, include_attributes=False)
    package = name if path and path.name == "__init__.py" else name.rpartition(".")[0]
    return hashlib.blake2b(dump.encode(), digest_size=8).hexdigest(), _imports(tree, package)


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


def _drop_hook_functions(tree: ast.Module) -> None:
    """Leave out the hook implementations (`harness_representations()` ...): they only list
    the entries, and would otherwise tie every entry of a module to the others."""
    from harness import hookspecs

    hooks = {n for n in dir(hookspecs) if n.startswith("harness_")}
    tree.body = [node for node in tree.body
                 if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in hooks)]


def _drop_other_entries(tree: ast.Module, module: ModuleType, keep: frozenset[str]) -> None:
    """Leave out top-level entry classes other than `keep` that the kept code never names."""
    from harness.api import Entry

    def is_other_entry(node: ast.ClassDef) -> bool:
        obj = getattr(module, node.name, None)
        return node.name not in keep and isinstance(obj, type) and issubclass(obj, Entry)

    others = {node.name for node in tree.body if isinstance(node, ast.ClassDef) and is_other_entry(node)}
    while True:
        kept = [node for node in tree.body if not (isinstance(node, ast.ClassDef) and node.name in others)]
        named = {n.id for node in kept for n in ast.walk(node) if isinstance(n, ast.Name)}
        named |= {n.attr for node in kept for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        back = named & others
        if not back:
            break
        others -= back
    tree.body = kept


def _strip_docstrings(tree: ast.AST) -> None:
    """Remove every statement that is only a string (docstrings and the like)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                        and isinstance(s.value.value, str))]
        if len(kept) != len(body):
            node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]


def _imports(tree: ast.Module, package: str) -> list[str]:
    """Module names imported anywhere in `tree` (relative imports resolved against
    `package`); `from a import b` yields `a.b` when that is a module, else `a`."""
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            submodules = [f"{base}.{a.name}" for a in node.names if _source_file(f"{base}.{a.name}")]
            out += submodules
            if len(submodules) < len(node.names):  # names defined in `base` itself
                out.append(base)
    return out


@lru_cache(maxsize=1)
def _site_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths().get(k, "") for k in ("purelib", "platlib")}
    try:
        dirs |= set(site.getsitepackages()) | {site.getusersitepackages()}
    except AttributeError:  # some embedded interpreters
        pass
    return tuple(str(Path(d).resolve()) for d in dirs if d)


def _installed_version(name: str, path: Path | None) -> str:
    """"dist==version" for a module installed in site-packages, "" otherwise (editable
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
