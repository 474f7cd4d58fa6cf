"""The package graph: code -> data_preparation only, and through the format alone.

The data side (data_preparation/, the avprep package) owns the record format, the manifest,
the shape constants and atomic writing; it must never import the model package (avmatch),
so it runs without knowing any network. The model package may import from avprep only
those format modules. Library modules raise plain exceptions, so only the scripts and
avprep.cli touch absl flags or the CLI's UsageError.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_SIDE = REPO / "data_preparation"
MODEL_PACKAGE = REPO / "code" / "avmatch"
LIBRARIES = (MODEL_PACKAGE, DATA_SIDE / "avprep")
# What the model package may take from the data side: the format and its constants.
FORMAT_MODULES = {"avprep.records", "avprep.atomic"}
CLI_MODULE = DATA_SIDE / "avprep" / "cli.py"


def imported_modules(path):
    """Every module a Python file imports (anywhere in it, lazy imports included), as
    dotted names; `from package import name` counts as package.name."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def _python_files(folder):
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return files


def _is_under(module, package):
    return module == package or module.startswith(package + ".")


def test_imported_modules_sees_every_form(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import avmatch.records\nfrom avprep import records, cli\n"
                      "def lazy():\n    from avmatch.training import Trainer\n")
    assert imported_modules(source) >= {"avmatch.records", "avprep", "avprep.records",
                                         "avprep.cli", "avmatch.training",
                                         "avmatch.training.Trainer"}


@pytest.mark.parametrize("path", _python_files(DATA_SIDE), ids=lambda p: str(p.relative_to(REPO)))
def test_data_preparation_never_imports_the_model_package(path):
    wrong = sorted(m for m in imported_modules(path) if _is_under(m, "avmatch"))
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}"


@pytest.mark.parametrize("path", _python_files(MODEL_PACKAGE),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_model_package_takes_only_the_format_from_avprep(path):
    modules = {m for m in imported_modules(path) if _is_under(m, "avprep")}
    # `from avprep import records` names the package itself too; what matters is its names
    taken = {m for m in modules if m != "avprep"}
    wrong = sorted(m for m in taken
                   if not any(_is_under(m, allowed) for allowed in FORMAT_MODULES))
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong} from the data side"


@pytest.mark.parametrize("path", [p for folder in LIBRARIES for p in _python_files(folder)
                                  if p != CLI_MODULE], ids=lambda p: str(p.relative_to(REPO)))
def test_library_modules_use_neither_flags_nor_the_cli(path):
    modules = imported_modules(path)
    wrong = sorted(m for m in modules if _is_under(m, "absl.flags") or _is_under(m, "avprep.cli"))
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: raise plain exceptions"
