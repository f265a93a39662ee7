"""The package's layers as a rule: a module imports only its own layer and the layers below it, and no two
modules import each other, directly or around a circle."""
import pytest

from conftest import ROOT, imported_modules, module_file

# Bottom to top; the package root (UserError, exit_status) sits below them all, its __main__ above them all.
LAYERS = ("core", "data", "methods", "evaluate", "serve", "pipeline", "ops")


def modules():
    """Every module of the package under a layer, as dotted names."""
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                  for p in (ROOT / "thinkcount").glob("*/*.py"))


def imports(module):
    """The package modules (not packages) a module imports, at the top or inside a function."""
    return {name for name in imported_modules(module_file(module))
            if name.count(".") == 2 and (module_file(name) or "").endswith(".py")
            and not module_file(name).endswith("__init__.py")}


def layer(module):
    return LAYERS.index(module.split(".")[1])


def upward(module, imported):
    return sorted(m for m in imported if layer(m) > layer(module))


@pytest.mark.parametrize("module", modules())
def test_imports_point_down(module):
    assert upward(module, imports(module)) == [], f"{module} imports a higher layer"


def test_no_circles():
    graph = {m: imports(m) for m in modules()}
    state = {}

    def visit(m, path):
        if state.get(m) == "open":
            raise AssertionError(" -> ".join(path + [m]))
        if m not in state:
            state[m] = "open"
            for n in sorted(graph.get(m, ())):
                visit(n, path + [m])
            state[m] = "done"

    for m in graph:
        visit(m, [])


def test_the_rule_sees_an_upward_import():
    assert upward("thinkcount.data.records", {"thinkcount.methods.training", "thinkcount.core.jsonl",
                                              "thinkcount.data.counting"}) == ["thinkcount.methods.training"]
    assert "thinkcount.data.records" in imports("thinkcount.methods.training")
