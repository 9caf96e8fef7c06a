"""The shape of the tree (README, "Architecture"): imports flow one way, backends stay behind their interface, files stay short."""

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
    {"bench", "bench_part_b", "distributed", "status", "sweep"},
    {"build"},
    {"config", "render"},
    {"sections"},
    {"backends"},
    {"diffusion", "models", "figures", "inputs", "outputs"},
    {"data"},
    {"section", "store"},
    {"errors", "hardware", "site_hooks"},
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
    )  # e.g. ("generator", "sections")
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
    return found


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
        "from generator.sections import all_sections; all_sections()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torch', 'generator.backends.', 'diffusers'))))"
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
    code = "import sys; import generator.render; print(sorted(m for m in sys.modules if m.startswith('generator.backends')))"
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


def test_files_stay_short():
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        limit = 300 if "sections" in path.parts else 400
        assert lines <= limit, f"{path.relative_to(PACKAGE)} has {lines} lines (at most {limit})"
