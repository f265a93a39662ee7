"""Provenance that cannot go stale: every module a stage runs (its script and every project module it imports,
at the top or inside a function) is among the stage's deps in dvc.yaml, so editing it reruns the stage."""
import copy

import pytest
import yaml

from conftest import ROOT, imported_modules, module_file


def files_run(module):
    """The project files importing `module` runs: its own, its packages' __init__ files, and all they import."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            path = module_file(".".join(parts[:depth]))
            if path and path not in seen:
                seen.add(path)
                todo += imported_modules(path)
    return seen


def missing_deps(stage):
    """Files the stage's command runs that none of its deps covers (a dep may be a file or a folder)."""
    module = stage["cmd"].split("python -m ", 1)[1].split()[0]
    deps = [d for d in stage.get("deps", []) if "${" not in d]
    return sorted(f for f in files_run(module) if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))


def stages():
    """Every stage of dvc.yaml (a foreach stage's template once), YAML anchors resolved."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in spec.items()}


@pytest.mark.parametrize("name", list(stages()))
def test_every_module_a_stage_runs_is_one_of_its_deps(name):
    assert missing_deps(stages()[name]) == []


def test_a_removed_dep_is_found():
    stage = copy.deepcopy(stages()["filter"])
    stage["deps"].remove("thinkcount/data")
    assert "thinkcount/data/counting.py" in missing_deps(stage)
    assert all(f.startswith("thinkcount/data/") for f in missing_deps(stage))
    stage["deps"].remove("thinkcount/__init__.py")
    assert missing_deps(stage)[0] == "thinkcount/__init__.py"


def test_the_walk_follows_imports_inside_functions():
    # profile.check_profile imports methods.training inside a function; training imports torch at the top.
    assert "thinkcount/methods/training.py" in files_run("thinkcount.ops.profile")
    assert files_run("thinkcount.pipeline.stage") >= {"thinkcount/__init__.py", "thinkcount/pipeline/config.py",
                                                      "thinkcount/pipeline/stage.py"}
