"""Derive each DVC stage's code dependencies from what its script imports.

A stage's code deps are its script (``stages/<name>.py``) and every module of the package
(``src/pianoeval``) the script imports, directly or transitively, found by static analysis
with :mod:`ast`: module-level imports and imports inside functions (many modules import
lazily), ``import pkg.a.b``, ``from pkg.a import b`` (``b`` a submodule or an attribute),
and relative imports inside the package. Importing ``pkg.a.b`` runs ``pkg/__init__.py`` and
``pkg/a/__init__.py`` too, so those are deps as well. The deps are files, never directories,
so editing one source file makes ``dvc status`` report exactly the stages that import it.
Not the standard library's ``modulefinder``: it follows every third-party import (torch,
transformers, partitura) through their whole trees; this walks the package's own files only.

``python -m pianoeval.pipeline_deps --check`` exits 1 and prints the differences when a
stage's declared code deps in dvc.yaml are not the derived ones; ``--write`` rewrites those
lines of dvc.yaml in place (every other line is kept byte for byte).
"""
from __future__ import annotations

import argparse
import ast
import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SCRIPTS_DIR = "stages"


class MissingModuleError(ImportError):
    """A script (through some module) imports a package module that has no source file."""


@dataclass
class StageDiff:
    """One stage's declared code deps against the derived ones."""

    script: str
    missing: list[str] = field(default_factory=list)  # imported, not covered by the deps
    extra: list[str] = field(default_factory=list)    # declared, not imported (or a directory)

    @property
    def ok(self) -> bool:
        """True when the declared code deps are exactly the derived files."""
        return not self.missing and not self.extra


# -- import analysis ----------------------------------------------------------------------------

def module_file(name: str, src_root: Path, package: str | None = None) -> Path | None:
    """The source file of module ``name`` (``pkg.a.b`` -> ``pkg/a/b.py`` or
    ``pkg/a/b/__init__.py``), or None when there is none under ``src_root`` (the package dir)."""
    package = package or src_root.name
    parts = name.split(".")
    if parts[0] != package:
        return None
    base = src_root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if len(parts) > 1 and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def module_name(path: Path, src_root: Path, package: str | None = None) -> str | None:
    """The dotted name of a file under ``src_root`` (``pkg/a/__init__.py`` -> ``pkg.a``), or None
    for a file outside the package (a stage script)."""
    package = package or src_root.name
    try:
        rel = path.resolve().relative_to(src_root.resolve())
    except ValueError:
        return None
    parts = [package, *rel.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(name: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b, a.b.c]``: the modules an import of ``a.b.c`` runs."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imports_of(path: Path, package: str, this_module: str | None = None,
               is_package: bool = False) -> list[tuple[str, bool]]:
    """The ``package`` modules a file imports anywhere in it (functions included), as
    ``(module name, required)`` pairs: required False for ``from x import y`` where ``y`` may be
    an attribute rather than a submodule. ``this_module`` resolves relative imports (None: a
    script, whose relative imports are ignored)."""
    return list(_imports_in(path.read_text(encoding="utf-8"), str(path), package, this_module,
                            is_package))


@functools.lru_cache(maxsize=4096)
def _imports_in(source: str, filename: str, package: str, this_module: str | None,
                is_package: bool) -> tuple[tuple[str, bool], ...]:
    """:func:`imports_of` on a file's text (cached: every stage parses the same modules)."""
    tree = ast.parse(source, filename=filename)
    found: list[tuple[str, bool]] = []

    def ours(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(mod, True) for alias in node.names if ours(alias.name)
                      for mod in _parents(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if this_module is None:
                    continue
                base = this_module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                if not base:
                    continue
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not ours(target):
                continue
            found += [(mod, True) for mod in _parents(target)]
            found += [(f"{target}.{alias.name}", False) for alias in node.names
                      if alias.name != "*"]
    return tuple(found)


def _defines(path: Path | None, name: str) -> bool:
    """Whether the module at ``path`` may define ``name`` (so ``from module import name`` need
    not be a submodule): any binding of it, a star import or a module ``__getattr__``."""
    if path is None:
        return False
    return name in _bound_names(path.read_text(encoding="utf-8"), str(path))


@functools.lru_cache(maxsize=4096)
def _bound_names(source: str, filename: str) -> frozenset[str]:
    """Every name a module's text binds anywhere (an over-estimate), plus ``*`` entries as a
    wildcard: a star import or a ``__getattr__`` makes any name possible."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return _ANY
                names.add(alias.asname or alias.name.split(".")[0])
    return _ANY if "__getattr__" in names else frozenset(names)


class _Any(frozenset):
    """A name set that contains every name."""

    def __contains__(self, name: object) -> bool:
        return True


_ANY = _Any()


def module_closure(script: Path, src_root: Path, package: str | None = None) -> list[Path]:
    """Every source file of the package that running ``script`` imports, directly or through
    other modules, sorted. MissingModuleError names the script, the importing file and the
    module when an import has no file (a module deleted or renamed)."""
    package = package or src_root.name
    seen: set[Path] = set()
    todo: list[Path] = [script]
    while todo:
        current = todo.pop()
        this = module_name(current, src_root, package)
        for name, required in imports_of(current, package, this,
                                         is_package=current.name == "__init__.py"):
            target = module_file(name, src_root, package)
            if target is None:
                parent, _, attr = name.rpartition(".")
                if required or not _defines(module_file(parent, src_root, package), attr):
                    via = "" if current == script else f" (via {current})"
                    raise MissingModuleError(
                        f"{script} imports {name}{via}, which has no source file under "
                        f"{src_root}")
                continue
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return sorted(seen)


def _relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with forward slashes."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def code_deps(script: Path, src_root: Path, *, root: Path | None = None,
              package: str | None = None) -> list[str]:
    """The code deps of the stage running ``script``: the script, then the sorted source files
    (under ``src_root``, the package directory) it imports transitively; paths relative to
    ``root`` (default: the common parent of the script's folder and ``src_root``)."""
    script, src_root = Path(script), Path(src_root)
    root = Path(root) if root is not None else Path(
        os.path.commonpath([script.resolve().parent.parent, src_root.resolve()]))
    files = [_relpath(p, root) for p in module_closure(script, src_root, package)]
    return [_relpath(script, root), *sorted(files)]


# -- dvc.yaml -----------------------------------------------------------------------------------

def _definition(stage: dict) -> dict:
    """The block that holds a stage's cmd and deps (``do`` for foreach/matrix stages)."""
    return stage.get("do", stage) if "foreach" in stage else stage


def stage_script(stage: dict, scripts_dir: str = SCRIPTS_DIR) -> str | None:
    """The ``stages/<name>.py`` script a stage's cmd runs, or None."""
    cmd = _definition(stage).get("cmd", "")
    cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    match = re.search(rf"(?<![\w/.-]){re.escape(scripts_dir)}/[\w/.-]+\.py\b", cmd)
    return match.group(0) if match else None


def is_code_dep(entry: str, src_prefix: str, scripts_dir: str = SCRIPTS_DIR) -> bool:
    """Whether a deps entry is code (a stage script or package source) rather than data."""
    return (entry.startswith(scripts_dir + "/") or entry == src_prefix
            or entry.startswith(src_prefix + "/"))


def declared_code_deps(stage: dict, src_prefix: str,
                       scripts_dir: str = SCRIPTS_DIR) -> list[str]:
    """The code entries of a stage's (or its ``do`` block's) deps, in dvc.yaml order."""
    deps = _definition(stage).get("deps") or []
    return [d for d in deps if isinstance(d, str) and is_code_dep(d, src_prefix, scripts_dir)]


def _covers(entry: str, path: str) -> bool:
    return path == entry or path.startswith(entry.rstrip("/") + "/")


def derive_all(dvc_yaml: Path, src_root: Path, *, root: Path | None = None,
               scripts_dir: str = SCRIPTS_DIR) -> dict[str, list[str]]:
    """Each dvc.yaml stage (by its key; a foreach stage's expansions share one) that runs a
    ``stages/*.py`` script -> its derived code deps."""
    dvc_yaml = Path(dvc_yaml)
    root = Path(root) if root is not None else dvc_yaml.parent
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    derived = {}
    for name, stage in stages.items():
        script = stage_script(stage, scripts_dir)
        if script is not None:
            derived[name] = code_deps(root / script, src_root, root=root)
    return derived


def compare(dvc_yaml: Path, src_root: Path, *, root: Path | None = None,
            scripts_dir: str = SCRIPTS_DIR) -> dict[str, StageDiff]:
    """Per stage with a script: the derived code deps that no declared entry covers (missing)
    and the declared entries that are not derived files (extra; a declared directory is extra
    even though it covers the files under it: it is imprecise)."""
    dvc_yaml = Path(dvc_yaml)
    root = Path(root) if root is not None else dvc_yaml.parent
    src_prefix = _relpath(Path(src_root), root)
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    derived = derive_all(dvc_yaml, src_root, root=root, scripts_dir=scripts_dir)
    diffs = {}
    for name, want in derived.items():
        have = declared_code_deps(stages[name], src_prefix, scripts_dir)
        diffs[name] = StageDiff(
            script=want[0],
            missing=[p for p in want if not any(_covers(d, p) for d in have)],
            extra=sorted(set(have) - set(want)))
    return diffs


# -- line-based rewrite of dvc.yaml -------------------------------------------------------------

_KEY = re.compile(r"^(\s*)([^\s#\-][^:#]*?):\s*(#.*)?$")
_ITEM = re.compile(r"^(\s*)-\s+([\"']?)([^\s\"'#]+)\2(\s*#.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(line: str) -> bool:
    """A line with YAML content (not blank, not only a comment)."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _stage_spans(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Stage key -> (first line, end line) of its block under the top-level ``stages:``."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^stages:\s*(#.*)?$", line)),
                 None)
    if start is None:
        return {}
    end = next((i for i in range(start + 1, len(lines))
                if _content(lines[i]) and _indent(lines[i]) == 0), len(lines))
    body = [i for i in range(start + 1, end) if _content(lines[i])]
    if not body:
        return {}
    key_indent = _indent(lines[body[0]])
    keys = [(i, m.group(2)) for i in body
            if _indent(lines[i]) == key_indent and (m := _KEY.match(lines[i].rstrip("\r\n")))]
    return {name: (i, keys[k + 1][0] if k + 1 < len(keys) else end)
            for k, (i, name) in enumerate(keys)}


def _rewrite_stage(lines: list[str], span: tuple[int, int], name: str, want: list[str],
                   src_prefix: str, scripts_dir: str) -> list[str]:
    """The stage's lines with its code-dep items replaced by ``want`` (comments kept for the
    paths that stay)."""
    block = lines[span[0]:span[1]]
    deps_at = [i for i, line in enumerate(block) if re.match(r"^\s*deps:\s*(#.*)?$", line)]
    if len(deps_at) > 1:
        raise ValueError(f"dvc.yaml stage {name}: more than one deps: key")
    newline = "\r\n" if block[0].endswith("\r\n") else "\n"
    if not deps_at:  # no deps at all: add a deps list before the cmd line
        cmd_at = next(i for i, line in enumerate(block) if re.match(r"^\s*cmd:", line))
        pad = " " * _indent(block[cmd_at])
        new = [f"{pad}deps:{newline}", *(f"{pad}  - {p}{newline}" for p in want)]
        return block[:cmd_at] + new + block[cmd_at:]
    d = deps_at[0]
    deps_indent = _indent(block[d])
    stop = d + 1
    while stop < len(block) and (not _content(block[stop]) or _indent(block[stop]) > deps_indent
                                 or block[stop].lstrip().startswith("- ")):
        stop += 1
    items = [i for i in range(d + 1, stop) if _ITEM.match(block[i].rstrip("\r\n"))]
    if not items:
        raise ValueError(f"dvc.yaml stage {name}: deps: has no list items")
    item_indent = _indent(block[items[0]])
    removed, comments = [], {}
    for i in items:
        m = _ITEM.match(block[i].rstrip("\r\n"))
        if _indent(block[i]) == item_indent and is_code_dep(m.group(3), src_prefix, scripts_dir):
            removed.append(i)
            comments.setdefault(m.group(3), m.group(4) or "")
    at = removed[0] if removed else items[0]
    pad = " " * _indent(block[at])
    eol = block[at][len(block[at].rstrip("\r\n")):] or newline
    new = [f"{pad}- {p}{comments.get(p, '')}{eol}" for p in want]
    gone = set(removed)
    kept = [line for i, line in enumerate(block) if i not in gone]
    insert_at = at - sum(1 for i in removed if i < at)
    return kept[:insert_at] + new + kept[insert_at:]


def rewrite(text: str, wanted: dict[str, list[str]], src_prefix: str = "src/pianoeval",
            scripts_dir: str = SCRIPTS_DIR) -> str:
    """dvc.yaml ``text`` with each stage of ``wanted`` having exactly those code deps: its
    ``- stages/...`` and ``- src/pianoeval...`` deps lines are removed and the wanted ones
    inserted where the first of them was, at the same indentation (a kept path keeps its trailing
    comment). Every other line is unchanged; rewriting twice gives the same text."""
    lines = text.splitlines(keepends=True)
    spans = _stage_spans(lines)
    unknown = sorted(set(wanted) - set(spans))
    if unknown:
        raise ValueError(f"dvc.yaml: stages not found in the text: {unknown}")
    for name, span in sorted(spans.items(), key=lambda kv: -kv[1][0]):  # bottom up
        if name in wanted:
            lines[span[0]:span[1]] = _rewrite_stage(lines, span, name, wanted[name],
                                                    src_prefix, scripts_dir)
    return "".join(lines)


def format_diffs(diffs: dict[str, StageDiff]) -> str:
    """The stages whose declared code deps differ, one block per stage."""
    out = []
    for name, diff in diffs.items():
        if diff.ok:
            continue
        out.append(f"{name} ({diff.script}): {len(diff.missing)} missing, "
                   f"{len(diff.extra)} extra")
        out += [f"  missing {p}" for p in diff.missing]
        out += [f"  extra   {p}" for p in diff.extra]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``--check``: exit 1 and print the differences when dvc.yaml's code deps are not the
    derived ones; ``--write``: rewrite them in place. Without either, print the derived deps."""
    parser = argparse.ArgumentParser(prog="python -m pianoeval.pipeline_deps",
                                     description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml is stale")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    parser.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    parser.add_argument("--src", type=Path, default=None,
                        help="the package directory (default: <repo>/src/pianoeval)")
    args = parser.parse_args(argv)
    root = args.dvc_yaml.resolve().parent
    src_root = args.src or root / "src" / "pianoeval"
    src_prefix = _relpath(src_root, root)
    try:
        wanted = derive_all(args.dvc_yaml, src_root, root=root)
    except MissingModuleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = args.dvc_yaml.read_text(encoding="utf-8")
    new = rewrite(text, wanted, src_prefix)
    if args.write:
        if new != text:
            args.dvc_yaml.write_text(new, encoding="utf-8")
        print(f"{args.dvc_yaml}: code deps of {len(wanted)} stages "
              f"{'rewritten' if new != text else 'already up to date'}")
        return 0
    if args.check:
        diffs = compare(args.dvc_yaml, src_root, root=root)
        report = format_diffs(diffs)
        if report or new != text:
            print(report or f"{args.dvc_yaml}: code deps are complete but not in derived order",
                  file=sys.stderr)
            print("run: python -m pianoeval.pipeline_deps --write", file=sys.stderr)
            return 1
        print(f"{args.dvc_yaml}: code deps of {len(wanted)} stages are up to date")
        return 0
    for name, deps in wanted.items():
        print(f"{name}:", *deps, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
