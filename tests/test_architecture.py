"""The shape of the tree (README, "Architecture"): imports flow one way (`lazy` ones too), and
backends stay behind their interface."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "generator"
TEMPLATES = PACKAGE.parent / "templates"

# Top to bottom; a module may import only from layers below its own (or from its own package).
LAYERS = [
    {"cli"},
    {"bench", "bench_part_b", "distributed", "pretrained", "status", "sweep"},
    {"build"},
    {"config", "render"},
    {"chapters"},
    {"backends"},
    {"diffusion", "models", "figures", "inputs", "outputs", "viewers"},
    {"data", "shipped"},
    {"section", "store"},
    {"errors", "hardware", "site_hooks", "speed", "image_files"},
]
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def _component(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """The package's components that `path` imports, at the top or inside functions."""
    found = set()
    package = (
        path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    )  # e.g. ("generator", "chapters")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                parts = [*base[1:], *(node.module.split(".") if node.module else [])]
                names = [parts[0]] if parts else [alias.name for alias in node.names]
            elif node.module and node.module.startswith("generator."):
                names = [node.module.split(".")[1]]
            else:
                names = []
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("generator.")
            )
        elif _lazy_import(node):  # lazy("..diffusion.samplers", __package__): an import too
            name = node.args[0].value
            level = len(name) - len(name.lstrip("."))
            if level:
                parts = [*package[: len(package) - level + 1][1:], *name[level:].split(".")]
                found.add(parts[0])
            elif name.startswith("generator."):
                found.add(name.split(".")[1])
    return found


def _lazy_import(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "lazy"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def test_every_module_has_a_layer():
    assert {
        _component(p)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent != PACKAGE
    } <= set(LAYER)


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_imports_flow_one_way(path):
    if path == PACKAGE / "__init__.py":
        return
    own = _component(path)
    upward = {name for name in _imports(path) - {own} if LAYER[name] <= LAYER[own]}
    assert not upward, (
        f"{path.relative_to(PACKAGE)} ({own}) imports {upward}, which are not below it"
    )


def test_the_renderer_and_list_import_no_backend_and_no_torch():
    code = (
        "import sys; import generator.render, generator.cli, generator.config\n"
        "from generator.chapters import all_sections; all_sections()\n"
        "heavy = ('torch', 'generator.backends.', 'diffusers', 'matplotlib', 'scipy')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    # the CLI knows the backends' specs (torch-free), never their models
    assert eval(out) == [
        "generator.backends.base",
        "generator.backends.deepfloyd",
        "generator.backends.local",
    ]
    code = (
        "import sys; import generator.render\n"
        "print(sorted(m for m in sys.modules if m.startswith('generator.backends')))"
    )
    assert (
        eval(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        == []
    )


def test_no_backend_is_named_outside_backends():
    from generator.backends import BACKENDS

    for path in PACKAGE.rglob("*.py"):
        if "backends" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        executors = {
            n.value
            for a in ast.walk(tree)
            if isinstance(a, ast.Assign)  # --executor's names (local, ray)
            and any(getattr(t, "id", None) == "EXECUTORS" for t in a.targets)
            for n in ast.walk(a.value)
            if isinstance(n, ast.Constant)
        }
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)} - executors
        assert not literals & set(BACKENDS), f"{path.relative_to(PACKAGE)} names a backend"
    for template in TEMPLATES.glob("*.j2"):
        text = template.read_text()
        assert not [b for b in BACKENDS if f'"{b}"' in text or f"'{b}'" in text], template.name


def test_the_table_is_collected_from_the_run_functions_in_page_order():
    """By number (a1.10 after a1.9), a section with `after` right after that one; an id declared
    twice, or a need or `after` that names no section, stops the import."""
    import types

    from generator.chapters import SECTIONS, _collect
    from generator.section import Params, section

    def chapter(*declared):
        module = types.ModuleType("chapter")
        for n, (sid, kwargs) in enumerate(declared):
            run = section(sid, sid, Params, **kwargs)(lambda p, ctx: None)
            run.__module__ = module.__name__
            setattr(module, f"run_{n}", run)
        return module

    ids = [
        s.id
        for s in _collect(
            [chapter(("b2.0", {"after": "b2.2"}), ("a1.10", {}), ("b2.2", {}), ("b2.3", {}))]
            + [chapter(("a1.9", {}), ("a0", {}), ("b2.1", {}))]
        )
    ]
    assert ids == ["a0", "a1.9", "a1.10", "b2.1", "b2.2", "b2.0", "b2.3"]
    for bad in (
        [chapter(("a1", {})), chapter(("a1", {}))],
        [chapter(("a1", {"needs": ("a2",)}))],
        [chapter(("a1", {"after": "a2"}))],
    ):
        with pytest.raises(ValueError):
            _collect(bad)
    assert all(s.run.section is s for s in SECTIONS)  # each is its run function's declaration
