"""The README documents every setting every service reads (regenerate with settings_doc --write)."""

from __future__ import annotations

from pathlib import Path

from dunning_kit.settings_doc import rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    missing = sorted({env for env, *_ in rows() if f"`{env}`" not in text})
    assert not missing, f"run `python -m dunning_kit.settings_doc --write README.md`; missing: {missing}"


def test_the_readme_shows_the_two_commands_first() -> None:
    text = README.read_text()
    assert text.index("make up") < text.index("## What runs")
    assert text.index("make test") < text.index("## What runs")
