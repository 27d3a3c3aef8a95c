"""The workspace's UI text in English and German, one module per part of the application (core: the frame
every page shares; more parts add a module and list it in PARTS). A key missing in a language is a test failure
(tests/test_texts.py), never a blank on a page."""

from __future__ import annotations

from importlib import import_module

LANGUAGES = ("en", "de")
PARTS = ("core", "auth", "pages", "policies", "operations", "templates", "reminders")


def catalog() -> dict[str, dict[str, str]]:
    """key -> {language: text}, from every part."""
    merged: dict[str, dict[str, str]] = {}
    for part in PARTS:
        texts: dict[str, dict[str, str]] = import_module(f"workspace.texts.{part}").TEXTS
        duplicated = set(texts) & set(merged)
        if duplicated:
            raise ValueError(f"texts {sorted(duplicated)} are defined twice (part {part})")
        merged.update(texts)
    return merged
