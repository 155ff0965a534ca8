#!/usr/bin/env python3
"""Keep dvc.yaml's source deps honest: each stage lists exactly the lamops code its run can execute.

For every stage of dvc.yaml, the code deps are the transitive closure, inside src/lamops, of the modules that
`lamops.stages.<stage>` imports, computed from the source tree as it is now (the `ast` of each file, nothing
is imported or run):

* every import counts, also a lazy one inside a function or method, and a constant
  `importlib.import_module("lamops.x")`; only imports under `if TYPE_CHECKING:` are left out, because they
  never run (they exist for the type checker);
* relative imports are resolved; `from lamops.x import y` counts `lamops.x` and, when `y` is a submodule
  (a `y.py` or a package `y/`), `lamops.x.y` too;
* importing `lamops.a.b` runs `lamops/__init__.py` and `lamops/a/__init__.py` first, so every package
  `__init__.py` on the way is in the closure (src/lamops/__init__.py and src/lamops/stages/__init__.py
  included: they run, so they are listed, in every stage alike).

The closure becomes dvc.yaml dep paths: a folder (`src/lamops/env/families`) where every .py file under it
(recursively, __pycache__ aside) is in the closure, otherwise the single `.py` files. Entries are sorted.

Modes:
  (default) print each stage's computed source deps;
  --check   exit 1 if any stage's `src/lamops/...` deps differ, printing per stage the missing files (run
            but not covered by a dep), the extra ones (covered but not run), and deps that do not exist;
  --write   rewrite only the `src/lamops/...` entries of each stage's `deps:` in dvc.yaml, as text: the other
            deps (data, params files), comments, order and formatting stay as they are; the source deps go
            where the first one was (else after the last dep), sorted;
  --affected PATH  print the stages a change to PATH reruns (their deps cover PATH) and every stage
            downstream of them in the DVC graph (a stage is downstream when one of its deps is, lies under, or
            contains an out of an upstream stage).

Stages without a DVC stage (`promote`) are not in dvc.yaml and so are not handled here.
"""

from __future__ import annotations

import argparse
import ast
import posixpath
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lamops"
SRC = "src"  # the package lives at <root>/src/lamops
CODE_PREFIX = f"{SRC}/{PACKAGE}"
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z0-9_.]+)\s*\}")


# ---- the import closure ------------------------------------------------------------------------------------


class Tree:
    """The package's modules as found on disk under <root>/src: dotted name <-> file path."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.src = root / SRC
        self.imports: dict[str, set[str]] = {}  # module -> the modules it imports (each file parsed once)

    def file(self, module: str) -> Path | None:
        """The file of a module of the package (`x.py` or `x/__init__.py`); None if none exists."""
        if module != PACKAGE and not module.startswith(PACKAGE + "."):
            return None
        base = self.src.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def is_package(self, module: str) -> bool:
        found = self.file(module)
        return found is not None and found.name == "__init__.py"

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Every import statement of a module, wherever it is (functions, methods, try blocks), except those in
    the body of `if TYPE_CHECKING:`."""

    def __init__(self) -> None:
        self.found: list[ast.Import | ast.ImportFrom | str] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append(node)

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.import_module("lamops.x") / import_module("lamops.x") with a constant name
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if (
            name == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            self.found.append(node.args[0].value)
        self.generic_visit(node)


def _with_parents(module: str) -> Iterator[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs each enclosing package's __init__ first."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def imported_modules(tree: Tree, module: str) -> set[str]:
    """The package's modules that `module`'s code imports (directly), with their parent packages."""
    if module not in tree.imports:
        tree.imports[module] = _imported_modules(tree, module)
    return tree.imports[module]


def _imported_modules(tree: Tree, module: str) -> set[str]:
    path = tree.file(module)
    if path is None:
        return set()
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in visitor.found:
        if isinstance(node, str):
            names.add(node)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        else:
            if node.level:
                base_parts = package.split(".")
                if node.level - 1 >= len(base_parts):
                    continue  # beyond the top package: not ours
                base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            for alias in node.names:
                if alias.name != "*" and tree.file(f"{target}.{alias.name}") is not None:
                    names.add(f"{target}.{alias.name}")
    found = set()
    for name in names:
        for part in _with_parents(name):
            if tree.file(part) is not None:
                found.add(part)
    return found


def closure(tree: Tree, module: str) -> set[str]:
    """Every module of the package that importing `module` (and running its functions) can import."""
    if tree.file(module) is None:
        raise SystemExit(f"{module}: no such module under {tree.src} (was it moved? update dvc.yaml)")
    seen: set[str] = set()
    todo = list(_with_parents(module))
    while todo:
        name = todo.pop()
        if name in seen or tree.file(name) is None:
            continue
        seen.add(name)
        todo.extend(imported_modules(tree, name) - seen)
    return seen


def closure_files(tree: Tree, module: str) -> set[str]:
    """The closure as paths relative to the root (`src/lamops/...py`)."""
    return {tree.rel(tree.file(name)) for name in closure(tree, module)}  # type: ignore[arg-type]


def _py_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*.py"):
        if "__pycache__" not in path.parts:
            yield path


def source_files(tree: Tree, entries: Iterable[str]) -> set[str]:
    """The .py files dvc.yaml's source entries cover (a folder covers every .py file under it)."""
    covered = set()
    for entry in entries:
        path = tree.root / entry
        if path.is_dir():
            covered.update(tree.rel(p) for p in _py_files(path))
        elif path.is_file():
            covered.add(entry)
    return covered


def dep_entries(tree: Tree, files: set[str]) -> list[str]:
    """The dvc.yaml entries for a set of files: the highest folder below src/lamops whose .py files are all in
    the set, else the file itself; sorted."""
    package_dir = tree.src / PACKAGE
    full: dict[Path, bool] = {}

    def is_full(folder: Path) -> bool:
        if folder not in full:
            inside = {tree.rel(p) for p in _py_files(folder)}
            full[folder] = bool(inside) and inside <= files
        return full[folder]

    entries = set()
    for rel in files:
        path = tree.root / rel
        entry = rel
        # walk up from the file's folder to just below src/lamops; keep the highest full folder
        for folder in path.parents:
            if folder == package_dir or package_dir not in folder.parents:
                break
            if is_full(folder):
                entry = tree.rel(folder)
        entries.add(entry)
    return sorted(entries)


def computed_deps(tree: Tree, stage: str) -> list[str]:
    return dep_entries(tree, closure_files(tree, f"{PACKAGE}.stages.{stage}"))


# ---- dvc.yaml: reading, the stage graph --------------------------------------------------------------------


def is_source(entry: str) -> bool:
    return entry == CODE_PREFIX or entry.startswith(CODE_PREFIX + "/")


def entry_paths(entries: Iterable[Any]) -> Iterator[str]:
    """dvc.yaml lists a path as a string or as a one-key mapping {path: {persist: true, ...}}."""
    for entry in entries or ():
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, Mapping) and len(entry) == 1:
            yield str(next(iter(entry)))
        else:
            raise ValueError(f"cannot read dvc.yaml path entry {entry!r}")


def load_stages(dvc_yaml: Path) -> dict[str, dict]:
    return (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}) or {}


def resolver(params: Mapping[str, Any]):
    """`${section.key}` -> its value in params.yaml (as DVC resolves dvc.yaml)."""

    def lookup(key: str) -> str:
        node: Any = params
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"${{{key}}}: not a key of params.yaml")
            node = node[part]
        return str(node)

    def resolve(text: str) -> str:
        return posixpath.normpath(_INTERPOLATION.sub(lambda m: lookup(m.group(1)), text))

    return resolve


def stage_paths(stages: Mapping[str, dict], params: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Each stage's resolved deps and outs (metrics and plots files count as outs)."""
    resolve = resolver(params)
    return {
        name: {
            "deps": [resolve(p) for p in entry_paths(stage.get("deps"))],
            "outs": [resolve(p) for key in ("outs", "metrics", "plots") for p in entry_paths(stage.get(key))],
        }
        for name, stage in stages.items()
    }


def under(path: str, folder: str) -> bool:
    """`path` is `folder` or lies inside it."""
    path, folder = posixpath.normpath(path), posixpath.normpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def downstream_edges(paths: Mapping[str, dict[str, list[str]]]) -> dict[str, set[str]]:
    """stage A -> the stages that consume one of A's outs (a dep that is, lies under, or contains the out)."""
    edges: dict[str, set[str]] = {name: set() for name in paths}
    for a, a_paths in paths.items():
        for b, b_paths in paths.items():
            if a != b and any(
                under(dep, out) or under(out, dep) for dep in b_paths["deps"] for out in a_paths["outs"]
            ):
                edges[a].add(b)
    return edges


def downstream(edges: Mapping[str, set[str]], starts: Iterable[str]) -> set[str]:
    """`starts` and every stage downstream of them."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


def stages_rerun_by(path: str, paths: Mapping[str, dict[str, list[str]]]) -> set[str]:
    """The stages `dvc repro` reruns when `path` changes: those with a dep that is `path` or a folder
    containing it, and everything downstream of them."""
    direct = {name for name, p in paths.items() if any(under(path, dep) for dep in p["deps"])}
    return downstream(downstream_edges(paths), direct)


# ---- comparing and rewriting -------------------------------------------------------------------------------


def differences(tree: Tree, stages: Mapping[str, dict]) -> dict[str, dict[str, list[str]]]:
    """Per stage that differs: missing / extra files, stale (non-existent) entries, expected entries."""
    report = {}
    for name, stage in stages.items():
        declared = [e for e in entry_paths(stage.get("deps")) if is_source(e)]
        files = closure_files(tree, f"{PACKAGE}.stages.{name}")
        expected = dep_entries(tree, files)
        if sorted(declared) == expected and len(set(declared)) == len(declared):
            continue
        covered = source_files(tree, declared)
        report[name] = {
            "missing": sorted(files - covered),
            "extra": sorted(covered - files),
            "stale": sorted(e for e in declared if not (tree.root / e).exists()),
            "declared": declared,
            "expected": expected,
        }
    return report


_KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):\s*(#.*)?$")
_ITEM = re.compile(r"^(\s*)-\s+(.*?)\s*$")


def _item_value(text: str) -> str:
    value = re.sub(r"\s+#.*$", "", text).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith("#")


def rewrite(text: str, wanted: Mapping[str, list[str]]) -> str:
    """dvc.yaml's text with each stage's `src/lamops/...` deps replaced by `wanted[stage]`, nothing else
    changed (line-based: the file's comments and layout are kept)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    in_stages = False
    stage_indent = None
    stage = None
    done: set[str] = set()
    while i < len(lines):
        line = lines[i]
        key = _KEY.match(line)
        if key and not _blank(line):
            indent = _indent(line)
            if indent == 0:
                in_stages = key.group(2) == "stages"
                stage_indent, stage = None, None
            elif in_stages and (stage_indent is None or indent == stage_indent):
                stage_indent, stage = indent, key.group(2)
            elif in_stages and stage in wanted and key.group(2) == "deps" and indent > stage_indent:
                out.append(line)
                i += 1
                block_start = i
                while i < len(lines) and (_blank(lines[i]) or _indent(lines[i]) > indent):
                    i += 1
                block = lines[block_start:i]
                # trailing blank/comment lines belong to what follows, not to the deps list
                end = len(block)
                while end and _blank(block[end - 1]):
                    end -= 1
                out.extend(_rewrite_block(block[:end], wanted[stage], indent, stage))
                out.extend(block[end:])
                done.add(stage)
                continue
        out.append(line)
        i += 1
    missing = set(wanted) - done
    if missing:
        raise SystemExit(f"dvc.yaml: no `deps:` list found for stage(s) {', '.join(sorted(missing))}")
    return "".join(out)


def _rewrite_block(block: list[str], entries: list[str], key_indent: int, stage: str) -> list[str]:
    kept: list[str] = []
    insert_at = None
    last_item = None
    item_prefix = None
    for line in block:
        item = _ITEM.match(line)
        if item and _indent(line) == min(_indent(x) for x in block if _ITEM.match(x)):
            item_prefix = line[: line.index("-")] + "- "
            if is_source(_item_value(item.group(2))):
                if item.group(2).rstrip().endswith(":"):
                    raise SystemExit(
                        f"dvc.yaml stage {stage}: cannot rewrite source dep with options: {line!r}"
                    )
                if insert_at is None:
                    insert_at = len(kept)
                continue
            kept.append(line)
            last_item = len(kept)
        else:
            kept.append(line)
            if item is None and not _blank(line) and last_item is not None:
                last_item = len(kept)  # an option line of the previous item ({path: {...}})
    if item_prefix is None:
        item_prefix = " " * (key_indent + 2) + "- "
    if insert_at is None:
        insert_at = last_item if last_item is not None else len(kept)
    newline = "\n"
    new = [f"{item_prefix}{entry}{newline}" for entry in entries]
    return kept[:insert_at] + new + kept[insert_at:]


def _strip_source(stages: Mapping[str, dict]) -> dict:
    """The stages with their source deps taken out: what --write must leave exactly as it was."""
    result = {}
    for name, stage in stages.items():
        stage = dict(stage)
        stage["deps"] = [e for e in (stage.get("deps") or []) if not (isinstance(e, str) and is_source(e))]
        result[name] = stage
    return result


def write(dvc_yaml: Path, tree: Tree) -> dict[str, tuple[int, int]]:
    """Rewrite dvc.yaml's source deps; returns per stage (count before, count after)."""
    text = dvc_yaml.read_text()
    before = yaml.safe_load(text)
    stages = before.get("stages", {})
    wanted = {name: computed_deps(tree, name) for name in stages}
    new_text = rewrite(text, wanted)
    after = yaml.safe_load(new_text)
    # safety: only the source deps changed, and they are now the computed ones
    rest_before = dict(before, stages=_strip_source(stages))
    rest_after = dict(after, stages=_strip_source(after.get("stages", {})))
    if rest_before != rest_after:
        raise SystemExit("dvc.yaml: the rewrite would change more than the source deps; file left as it was")
    for name in stages:
        got = [e for e in entry_paths(after["stages"][name].get("deps")) if is_source(e)]
        if got != wanted[name]:
            raise SystemExit(f"dvc.yaml stage {name}: the rewrite did not give the computed deps; file left")
    if new_text != text:
        dvc_yaml.write_text(new_text)
    counts = {}
    for name in stages:
        old = [e for e in entry_paths(stages[name].get("deps")) if is_source(e)]
        counts[name] = (len(old), len(wanted[name]))
    return counts


# ---- command line ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dvc_deps.py",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if dvc.yaml's source deps are not the closure"
    )
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's src/lamops deps in place")
    mode.add_argument("--affected", metavar="PATH", help="print the stages a change to PATH reruns")
    parser.add_argument("--root", type=Path, default=ROOT, help="project root (default: this checkout)")
    args = parser.parse_args(argv)

    tree = Tree(args.root.resolve())
    dvc_yaml = tree.root / "dvc.yaml"
    stages = load_stages(dvc_yaml)

    if args.check:
        report = differences(tree, stages)
        for name, diff in report.items():
            print(f"stage {name}: source deps differ from the import closure of lamops.stages.{name}")
            for path in diff["missing"]:
                print(f"  missing  {path}  (imported by the stage, not covered by its deps)")
            for path in diff["extra"]:
                print(f"  extra    {path}  (covered by its deps, not imported by the stage)")
            for path in diff["stale"]:
                print(f"  stale    {path}  (listed, does not exist)")
            if not (diff["missing"] or diff["extra"] or diff["stale"]):
                print(f"  same files, other entries: listed {diff['declared']}, expected {diff['expected']}")
        if report:
            print(f"\n{len(report)} stage(s) out of date: run `python scripts/dvc_deps.py --write`")
            return 1
        print(f"dvc.yaml: the source deps of all {len(stages)} stages match their import closures")
        return 0

    if args.write:
        counts = write(dvc_yaml, tree)
        for name, (old, new) in counts.items():
            print(f"{name:14} {old:3} -> {new:3} source deps")
        return 0

    if args.affected:
        params = yaml.safe_load((tree.root / "params.yaml").read_text())
        target = Path(args.affected)
        if target.is_absolute():
            target = target.resolve().relative_to(tree.root)
        rerun = stages_rerun_by(target.as_posix(), stage_paths(stages, params))
        for name in stages:
            if name in rerun:
                print(name)
        return 0

    for name in stages:
        print(f"{name}:")
        for entry in computed_deps(tree, name):
            print(f"  - {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
