"""The library's layering, read from the source with ``ast``: the errors module is a leaf, no
library module depends on the command line, and the command registry lives with the commands."""

import ast
import inspect
from pathlib import Path

import fisherae
from fisherae import errors

PACKAGE = Path(fisherae.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (deferred imports inside functions included);
    ``from a import b`` counts as both ``a`` and ``a.b``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_modules_are_found():
    names = {module_name(p) for p in MODULES}
    assert {"fisherae.cli", "fisherae.errors", "fisherae.training", "fisherae.commands.registry"} <= names


def test_only_the_entry_points_import_the_command_line():
    importers = {module_name(p) for p in MODULES if "fisherae.cli" in imported_modules(p)}
    assert importers == {"fisherae.__main__"}


def test_errors_is_a_leaf_module():
    assert not {m for m in imported_modules(PACKAGE / "errors.py") if m.split(".")[0] == "fisherae"}


def test_the_statistics_and_the_paper_are_leaf_modules():
    for leaf in ("seed_stats.py", "paper.py"):
        assert not {m for m in imported_modules(PACKAGE / leaf) if m.split(".")[0] == "fisherae"}, leaf


def test_every_error_derives_from_the_one_root():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) > 5
    assert all(issubclass(c, errors.FisherAEError) for c in classes)
    assert errors.FisherAEError.__bases__ == (Exception,)


def test_the_command_registry_lives_with_the_commands():
    cli = imported_modules(PACKAGE / "cli.py")
    assert {"fisherae.commands", "fisherae.commands.registry"} <= cli
    registry = imported_modules(PACKAGE / "commands" / "registry.py")
    assert not {m for m in registry if m.split(".")[0] == "fisherae"}


def fisherae_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m.split(".")[0] == "fisherae"}


def test_the_nets_and_the_data_do_not_lean_on_their_neighbours():
    assert "fisherae.losses" not in fisherae_imports(PACKAGE / "models.py")  # the latent adversary is a net
    assert "fisherae.models" not in fisherae_imports(PACKAGE / "data.py")  # image shapes come from a leaf
    assert not fisherae_imports(PACKAGE / "image_shapes.py")


def test_torch_threads_are_set_in_one_place():
    callers = {module_name(p) for p in MODULES if "set_num_threads" in p.read_text()}
    assert callers == {"fisherae.devices"}


def test_the_readme_names_every_library_module():
    """README's "Library and command line" lists the modules, one idea each: a module added
    without a line there is a module nobody is told about."""
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    section = readme[readme.index("## Library and command line"):]
    section = section[:section.index("\n## ", 1)]
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert sorted(m for m in modules if f"`{m}`" not in section) == []
