"""dvc.yaml's code deps are honest: each stage lists the lamops code its run imports (scripts/dvc_deps.py
computes the import closure from the source tree), so `dvc repro` and the flow's skip of unchanged stages
(lamops.stages.fingerprint) rerun a stage when code it runs changes, and only then."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIX = "run `python scripts/dvc_deps.py --write` to update dvc.yaml"


def _load_script():
    spec = importlib.util.spec_from_file_location("lamops_scripts_dvc_deps", ROOT / "scripts" / "dvc_deps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dvc_deps = _load_script()
STAGES = list(dvc_deps.load_stages(ROOT / "dvc.yaml"))


@pytest.fixture(scope="module")
def tree():
    return dvc_deps.Tree(ROOT)


@pytest.fixture(scope="module")
def paths() -> dict:
    """Each DVC stage's deps and outs, `${...}` resolved against params.yaml."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return dvc_deps.stage_paths(dvc_deps.load_stages(ROOT / "dvc.yaml"), params)


# ---- (a) dvc.yaml's source deps are the import closure -----------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_source_deps_are_the_import_closure(tree, stage: str) -> None:
    stages = dvc_deps.load_stages(ROOT / "dvc.yaml")
    diff = dvc_deps.differences(tree, {stage: stages[stage]}).get(stage)
    if diff:
        lines = [
            f"dvc.yaml stage {stage}: its src/lamops deps are not the import closure of lamops.stages.{stage}"
        ]
        lines += [f"  missing {p}" for p in diff["missing"]]
        lines += [f"  extra   {p}" for p in diff["extra"]]
        lines += [f"  stale   {p} (does not exist)" for p in diff["stale"]]
        if not (diff["missing"] or diff["extra"] or diff["stale"]):
            lines.append(f"  listed {diff['declared']}, expected {diff['expected']}")
        lines.append(FIX)
        pytest.fail("\n".join(lines))


def test_the_closure_follows_lazy_relative_and_submodule_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "lamops"
    files = {
        "__init__.py": "",
        "stages/__init__.py": "",
        "stages/s.py": "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
        "from ..a import b\nif TYPE_CHECKING:\n    from lamops import typing_only\n"
        "def run():\n    import lamops.lazy.deep\n",
        "a/__init__.py": "",
        "a/b.py": "from . import c\n",
        "a/c.py": "import os\nimport lamops.io\n",
        "io.py": "",
        "lazy/__init__.py": "",
        "lazy/deep.py": "",
        "typing_only.py": "",
        "unused.py": "",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    fake = dvc_deps.Tree(tmp_path)
    closure = dvc_deps.closure_files(fake, "lamops.stages.s")
    assert closure == {f"src/lamops/{rel}" for rel in files} - {
        "src/lamops/typing_only.py",
        "src/lamops/unused.py",
    }
    # a folder whose .py files are all in the closure is listed as the folder
    assert dvc_deps.dep_entries(fake, closure) == [
        "src/lamops/__init__.py",
        "src/lamops/a",
        "src/lamops/io.py",
        "src/lamops/lazy",
        "src/lamops/stages",
    ]


def test_write_replaces_only_the_source_deps_and_keeps_the_rest_of_the_text() -> None:
    text = """# top comment
stages:
  one:
    cmd: lamops one
    deps:
      - data/in   # the input
      - src/lamops/old.py
      # a comment between deps
      - src/lamops/b.py
      - params/x.json
    params:
      - one.out_dir
    outs:
      - data/out

  two:
    cmd: lamops two
    deps:
      - ${one.out_dir}:
          cache: false
    outs:
      - data/two
plots:
  - x
"""
    new = dvc_deps.rewrite(text, {"one": ["src/lamops/a.py", "src/lamops/c"], "two": ["src/lamops/z.py"]})
    assert new == text.replace(
        "      - src/lamops/old.py\n      # a comment between deps\n      - src/lamops/b.py\n",
        "      - src/lamops/a.py\n      - src/lamops/c\n      # a comment between deps\n",
    ).replace("          cache: false\n", "          cache: false\n      - src/lamops/z.py\n")
    # rewriting with what is there changes nothing
    assert (
        dvc_deps.rewrite(new, {"one": ["src/lamops/a.py", "src/lamops/c"], "two": ["src/lamops/z.py"]}) == new
    )


# ---- (b) what a change to a file reruns, from dvc.yaml's stage graph ---------------------------------------


def test_stages_rerun_by_a_path_are_its_direct_users_and_their_downstream() -> None:
    paths = {
        "a": {"deps": ["in/x", "src/lamops/a.py"], "outs": ["out/a"]},
        "b": {"deps": ["out/a/file.json"], "outs": ["out/b"]},  # under a's out
        "c": {"deps": ["src/lamops"], "outs": ["out/c"]},  # a folder holding the changed file
        "d": {"deps": ["other", "out/c"], "outs": ["out/d"]},
        "e": {"deps": ["out"], "outs": ["out2/e"]},  # a folder holding a's out
        "f": {"deps": ["src/lamops/ab.py"], "outs": ["out2/f"]},  # a prefix is not a folder
    }
    rerun = dvc_deps.stages_rerun_by
    assert rerun("src/lamops/a.py", paths) == {"a", "b", "c", "d", "e"}
    assert rerun("in/x", paths) == {"a", "b", "e"}
    assert rerun("other", paths) == {"d", "e"}
    assert rerun("src/lamops/ab.py", paths) == {"c", "d", "e", "f"}
    assert rerun("README.md", paths) == set()


def test_the_dvc_graph_links_the_stages_through_their_outs(paths: dict) -> None:
    edges = dvc_deps.downstream_edges(paths)
    assert "execute" in edges["instantiate"]  # execute reads ${instantiate.out_dir}/tasks.jsonl
    assert "evaluate" in edges["offline_rl"]
    assert dvc_deps.downstream(edges, {"collect"}) == {
        "collect", "evolve", "instantiate", "execute", "judge", "datasets",
        "plan_pretrain", "imitate", "self_boost", "reward_model", "offline_rl", "evaluate",
    }  # fmt: skip


def test_a_change_to_a_task_family_reruns_collect_and_everything_after_it(paths: dict) -> None:
    families = sorted((ROOT / "src" / "lamops" / "env" / "families").rglob("*.py"))
    assert families
    edges = dvc_deps.downstream_edges(paths)
    after_collect = dvc_deps.downstream(edges, {"collect"})
    for file in families:
        rel = file.relative_to(ROOT).as_posix()
        direct = {name for name, p in paths.items() if any(dvc_deps.under(rel, dep) for dep in p["deps"])}
        assert "collect" in direct, f"dvc.yaml: collect runs {rel} but does not list it; {FIX}"
        rerun = dvc_deps.stages_rerun_by(rel, paths)
        assert rerun == after_collect | dvc_deps.downstream(edges, direct), rel


def test_a_change_to_the_reward_code_reruns_exactly_the_reward_model_and_what_follows(paths: dict) -> None:
    rerun = dvc_deps.stages_rerun_by("src/lamops/train/reward.py", paths)
    assert rerun == {"reward_model", "offline_rl", "evaluate"}, (
        f"a change to src/lamops/train/reward.py reruns {sorted(rerun)}; if dvc.yaml is stale, {FIX}"
    )


# ---- (c) the flow's skip of unchanged stages sees the same deps --------------------------------------------


def test_a_changed_family_changes_the_flows_inputs_digest_of_collect(tmp_path: Path) -> None:
    from lamops.config import load_config
    from lamops.stages.fingerprint import Hasher, inputs_digest, stage_spec

    # a project copy: params, dvc.yaml and the code (fingerprint hashes <root>/src/lamops/... when it exists)
    shutil.copy(ROOT / "params.yaml", tmp_path)
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    shutil.copytree(
        ROOT / "src" / "lamops",
        tmp_path / "src" / "lamops",
        ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"),
    )
    cfg = load_config(tmp_path / "params.yaml")
    spec = stage_spec(cfg, "collect")
    assert spec is not None
    code = tmp_path / "src" / "lamops"
    assert all(dep.is_relative_to(tmp_path) for dep in spec.deps)

    def digest() -> str:
        return inputs_digest(spec, Hasher(tmp_path))  # a fresh hash cache each time, never saved

    before = digest()
    assert digest() == before
    family = code / "env" / "families" / "base.py"
    family.write_text(family.read_text() + "\n# changed\n")
    after = digest()
    assert after != before, f"the flow would skip collect after a change to {family.name}; {FIX}"
    # code collect does not run leaves its digest alone
    reward = code / "train" / "reward.py"
    reward.write_text(reward.read_text() + "\n# changed\n")
    assert digest() == after
