"""The licence an enterprise checks before adopting the platform: Apache-2.0 at the root and in every package."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_root_carries_the_apache_2_licence_and_a_notice() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Apache License, Version 2.0" in (ROOT / "NOTICE").read_text()


def test_every_package_of_the_workspace_declares_apache_2() -> None:
    projects = [
        ROOT / "pyproject.toml",
        *sorted(ROOT.glob("libs/*/pyproject.toml")),
        *sorted(ROOT.glob("services/*/pyproject.toml")),
    ]
    assert len(projects) >= 7
    undeclared = [
        str(p.relative_to(ROOT))
        for p in projects
        if tomllib.loads(p.read_text())["project"].get("license") != "Apache-2.0"
    ]
    assert undeclared == []
