"""Stage code deps: derived from the scripts' imports, complete in dvc.yaml, honoured by DVC."""
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from pianoeval.pipeline_deps import (MissingModuleError, code_deps, compare, declared_code_deps,
                                     derive_all, format_diffs, is_code_dep, main, rewrite,
                                     stage_script)

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "pianoeval"
SPLITS = "src/pianoeval/data/splits.py"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


# A tiny package: function-level imports, `from pkg.x import submodule`, a transitive chain,
# relative imports, attribute imports, an unused module and an unused subpackage.
PKG = {
    "src/pkg/__init__.py": "",
    "src/pkg/a/__init__.py": "CONST_NOT_A_MODULE = 2\n",
    "src/pkg/a/mod.py": "CONST = 1\n",
    "src/pkg/a/util.py": "import os\n",
    "src/pkg/b/__init__.py": "",
    "src/pkg/b/chain1.py": "from pkg.b import chain2\nZ = 1\n",
    "src/pkg/b/chain2.py": "import pkg.c.leaf as leaf\n",
    "src/pkg/b/rel.py": "from .chain2 import leaf\nfrom .. import lazy\n",
    "src/pkg/c/__init__.py": "",
    "src/pkg/c/leaf.py": "",
    "src/pkg/lazy.py": """\
        def f():
            from pkg.a.util import os
            return os
        """,
    "src/pkg/unused.py": "import pkg.a.mod\n",
    "src/pkg/d/__init__.py": "",
    "src/pkg/d/x.py": "",
    "stages/s.py": """\
        import numpy
        from pkg.a import mod, CONST_NOT_A_MODULE
        from pkg.b.chain1 import Z

        def main():
            from pkg.lazy import f
            return f()
        """,
    "stages/r.py": "from pkg.b import rel\n",
    "stages/plain.py": "import json\n",
}


@pytest.fixture
def pkg(tmp_path):
    write(tmp_path, PKG)
    return tmp_path


def test_code_deps_follow_every_kind_of_import(pkg):
    deps = code_deps(pkg / "stages/s.py", pkg / "src/pkg", root=pkg)
    assert deps == ["stages/s.py",
                    "src/pkg/__init__.py",
                    "src/pkg/a/__init__.py",
                    "src/pkg/a/mod.py",          # from pkg.a import mod (a submodule)
                    "src/pkg/a/util.py",         # imported inside lazy.f
                    "src/pkg/b/__init__.py",
                    "src/pkg/b/chain1.py",
                    "src/pkg/b/chain2.py",       # chain1 -> chain2 -> pkg.c.leaf
                    "src/pkg/c/__init__.py",
                    "src/pkg/c/leaf.py",
                    "src/pkg/lazy.py"]           # imported inside main()
    # the default root is the common parent of stages/ and the package
    assert code_deps(pkg / "stages/s.py", pkg / "src/pkg") == deps


def test_relative_imports_and_a_script_without_package_imports(pkg):
    assert code_deps(pkg / "stages/r.py", pkg / "src/pkg", root=pkg) == [
        "stages/r.py", "src/pkg/__init__.py", "src/pkg/a/__init__.py", "src/pkg/a/util.py",
        "src/pkg/b/__init__.py", "src/pkg/b/chain2.py", "src/pkg/b/rel.py",
        "src/pkg/c/__init__.py", "src/pkg/c/leaf.py", "src/pkg/lazy.py"]
    assert code_deps(pkg / "stages/plain.py", pkg / "src/pkg", root=pkg) == ["stages/plain.py"]


def test_a_deleted_module_names_the_script_and_the_module(pkg):
    (pkg / "src/pkg/c/leaf.py").unlink()
    with pytest.raises(MissingModuleError, match=r"stages/s\.py imports pkg\.c\.leaf "
                                                 r"\(via .*chain2\.py\)"):
        code_deps(pkg / "stages/s.py", pkg / "src/pkg", root=pkg)
    write(pkg, {"stages/t.py": "def main():\n    from pkg.gone import x\n"})
    with pytest.raises(MissingModuleError, match=r"stages/t\.py imports pkg\.gone, which"):
        code_deps(pkg / "stages/t.py", pkg / "src/pkg", root=pkg)
    # `from pkg.a import gone`: neither a submodule nor a name pkg/a/__init__.py defines
    write(pkg, {"stages/u.py": "from pkg.a import mod, gone\n"})
    with pytest.raises(MissingModuleError, match=r"stages/u\.py imports pkg\.a\.gone, which"):
        code_deps(pkg / "stages/u.py", pkg / "src/pkg", root=pkg)
    write(pkg, {"src/pkg/a/__init__.py": "gone = 1\n"})     # an attribute, not a module
    assert "src/pkg/a/mod.py" in code_deps(pkg / "stages/u.py", pkg / "src/pkg", root=pkg)


DVC_YAML = """\
# top comment
stages:
  one:
    cmd: python stages/s.py --fast
    deps:
      - stages/s.py
      - src/pkg/a/mod.py  # the constants
      - data/in.csv   # data stays
      - src/pkg/d
      - src/pkg/unused.py
    params:
      - one
    outs:
      - data/out

  # a comment between stages
  many:
    foreach: ${items}
    do:
      cmd: python stages/r.py ${key}
      deps:
      - data/${key}
      - src/pkg/b/rel.py
      outs:
      - out/${key}

  shell:
    cmd: echo hi
    deps:
      - src/pkg/lazy.py
plots:
  - x.csv
"""


def test_compare_reports_missing_and_imprecise_deps(pkg):
    (pkg / "dvc.yaml").write_text(DVC_YAML)
    diffs = compare(pkg / "dvc.yaml", pkg / "src/pkg")
    assert set(diffs) == {"one", "many"}          # `shell` runs no stages/ script
    one = diffs["one"]
    assert "src/pkg/a/mod.py" not in one.missing and "src/pkg/lazy.py" in one.missing
    assert one.extra == ["src/pkg/d", "src/pkg/unused.py"]   # a directory is imprecise
    assert diffs["many"].missing[0] == "stages/r.py" and diffs["many"].extra == []
    assert "one (stages/s.py): 9 missing, 2 extra" in format_diffs(diffs)


def test_rewrite_touches_only_code_dep_lines_and_is_idempotent(pkg):
    (pkg / "dvc.yaml").write_text(DVC_YAML)
    wanted = derive_all(pkg / "dvc.yaml", pkg / "src/pkg")
    new = rewrite(DVC_YAML, wanted, "src/pkg")
    assert rewrite(new, wanted, "src/pkg") == new
    code = lambda line: is_code_dep(line.strip().lstrip("- ").split()[0], "src/pkg") \
        if line.strip().startswith("- ") else False
    stage_lines = lambda text: text.split("  shell:")[0]
    assert [ln for ln in stage_lines(new).splitlines() if not code(ln)] == \
        [ln for ln in stage_lines(DVC_YAML).splitlines() if not code(ln)]
    assert new.split("  shell:")[1] == DVC_YAML.split("  shell:")[1]   # no script: untouched
    stages = yaml.safe_load(new)["stages"]
    for name in ("one", "many"):
        assert declared_code_deps(stages[name], "src/pkg") == wanted[name]
    assert stages["one"]["deps"][2:4] == ["src/pkg/a/__init__.py", "src/pkg/a/mod.py"]
    assert "      - src/pkg/a/mod.py  # the constants\n" in new     # a kept path keeps its note
    assert "      - src/pkg/b/rel.py\n      - data/${key}" not in new
    assert "      - data/${key}\n      - stages/r.py\n" in new        # same (compact) indentation
    assert stages["many"]["do"]["deps"][0] == "data/${key}"
    assert all(d.ok for d in compare_text(pkg, new).values())


def compare_text(root: Path, text: str):
    (root / "dvc.yaml").write_text(text)
    return compare(root / "dvc.yaml", root / "src/pkg")


def test_main_check_and_write(pkg, capsys):
    (pkg / "dvc.yaml").write_text(DVC_YAML)
    args = ["--dvc-yaml", str(pkg / "dvc.yaml"), "--src", str(pkg / "src/pkg")]
    assert main([*args, "--check"]) == 1
    assert "one (stages/s.py)" in capsys.readouterr().err
    assert main([*args, "--write"]) == 0
    written = (pkg / "dvc.yaml").read_text()
    assert main([*args, "--check"]) == 0
    assert main([*args, "--write"]) == 0 and (pkg / "dvc.yaml").read_text() == written
    (pkg / "src/pkg/lazy.py").unlink()
    assert main([*args, "--check"]) == 2
    assert "stages/s.py imports pkg.lazy" in capsys.readouterr().err


# -- the repository's own dvc.yaml ------------------------------------------------------------

REPO_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_stage_runs_a_script():
    assert {name for name, stage in REPO_STAGES.items() if stage_script(stage) is None} == set()


@pytest.fixture(scope="module")
def repo_diffs():
    return compare(ROOT / "dvc.yaml", SRC, root=ROOT)


@pytest.mark.parametrize("stage", sorted(REPO_STAGES))
def test_stage_code_deps_are_complete(stage, repo_diffs):
    """Fails naming the stage and each imported module its deps leave out: run
    `python -m pianoeval.pipeline_deps --write`."""
    diff = repo_diffs[stage]
    assert diff.missing == [], f"stage {stage} imports modules its deps leave out"
    assert diff.extra == [], f"stage {stage} declares code it does not import (or a directory)"


# keys of a stage's own section its outputs do not depend on (params.yaml says so for each)
NOT_OUTPUT_PARAMS = {"align": {"n_jobs", "resume_dir"}, "train_sequence": {"n_jobs"},
                     "train_fusion": {"heads_cache"}}


@pytest.mark.parametrize("stage", sorted(REPO_STAGES))
def test_stage_params_cover_its_own_section(stage):
    """A stage named like a params.yaml section depends on the whole section or on each of its
    keys (a key left out changes outputs without making the stage stale), except the keys of
    NOT_OUTPUT_PARAMS."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if stage not in params:
        return
    body = REPO_STAGES[stage].get("do", REPO_STAGES[stage])
    listed = [k for entry in body.get("params", [])
              for k in ([entry] if isinstance(entry, str) else
                        [key for keys in entry.values() for key in keys])]
    if stage in listed:
        return
    covered = {k.split(".")[1] for k in listed if k.startswith(f"{stage}.")}
    uncovered = set(params[stage]) - covered - NOT_OUTPUT_PARAMS.get(stage, set())
    assert uncovered == set(), f"stage {stage} reads {stage}.{sorted(uncovered)} undeclared"


def test_dvc_yaml_is_in_derived_form():
    text = (ROOT / "dvc.yaml").read_text()
    assert rewrite(text, derive_all(ROOT / "dvc.yaml", SRC, root=ROOT)) == text


# -- what DVC itself makes of the deps, in a copy of the working tree -------------------------

@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """The working tree's git files (tracked and new, not ignored) in a fresh git repo."""
    dest = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():   # skip deleted-but-tracked files
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    (dest / ".dvc").mkdir(exist_ok=True)
    (dest / ".dvc/config.local").write_text(
        f"[core]\n    site_cache_dir = {dest / '.site_cache'}\n    analytics = false\n")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def expanded_stages(path: Path) -> dict[str, tuple[str, set[str]]]:
    """DVC's own view: each stage after templating (``ingest@percepiano``) -> (cmd, dep paths)."""
    from dvc.repo import Repo

    with Repo(str(path)) as repo:
        return {stage.name: (stage.cmd, {dep.def_path for dep in stage.deps})
                for stage in repo.index.stages}


def test_dvc_sees_each_source_file_in_exactly_the_stages_that_import_it(repo_copy):
    stages = expanded_stages(repo_copy)
    src = repo_copy / "src/pianoeval"
    derived = {name: set(code_deps(repo_copy / stage_script({"cmd": cmd}), src, root=repo_copy))
               for name, (cmd, _) in stages.items()}
    for path in sorted({p for deps in derived.values() for p in deps}):
        declared = {name for name, (_, deps) in stages.items() if path in deps}
        importing = {name for name, deps in derived.items() if path in deps}
        assert declared == importing, f"{path}: DVC deps != importing stages"
    assert {n.split("@")[0] for n, deps in derived.items() if SPLITS in deps} >= {
        "train_fusion", "splits"}


def test_dvc_status_after_editing_a_source_file(repo_copy, tmp_path, monkeypatch):
    """A genuine `dvc status`: the copy's dvc.yaml keeps each stage's cmd and code deps (the
    data it reads and writes is not in a fresh copy), `dvc commit` records their hashes in
    dvc.lock, then editing one source file makes exactly its importers stale."""
    from dvc.repo import Repo

    work = tmp_path / "work"
    shutil.copytree(repo_copy, work, symlinks=True)
    (work / ".dvc/config.local").write_text(
        f"[core]\n    site_cache_dir = {work / '.site_cache'}\n    analytics = false\n")
    spec = yaml.safe_load((work / "dvc.yaml").read_text())
    for stage in spec["stages"].values():
        body = stage.get("do", stage)
        keep = {"cmd": body["cmd"],
                "deps": declared_code_deps(stage, "src/pianoeval")}
        body.clear()
        body.update(keep)
    spec.pop("plots", None)
    (work / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (work / "dvc.lock").unlink(missing_ok=True)

    src = work / "src/pianoeval"
    monkeypatch.chdir(work)   # status names the stages as `dvc status` does there
    with Repo(str(work)) as repo:
        repo.commit(None, force=True)
        assert repo.status() == {}
        importers = {stage.name for stage in repo.index.stages
                     if SPLITS in code_deps(work / stage_script({"cmd": stage.cmd}), src,
                                            root=work)}
    assert len(importers) > 10 and "splits" in importers

    def stale_after_editing(rel: str) -> set[str]:
        path = work / rel
        original = path.read_text()
        path.write_text(original + "\n# touched\n")
        try:
            with Repo(str(work)) as repo:
                return set(repo.status())
        finally:
            path.write_text(original)

    assert stale_after_editing(SPLITS) == importers
    assert stale_after_editing("src/pianoeval/cli.py") == set()   # no stage imports the CLI
    everyone = stale_after_editing("src/pianoeval/__init__.py")
    assert everyone == set(expanded_stages(work))
