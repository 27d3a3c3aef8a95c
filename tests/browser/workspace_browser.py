"""What the workspace's browser tests share (extracted from test_workspace_day.py): a person signed in through
the identity provider's form in a fresh chromium context (desktop or phone size), and the axe-core check."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import Browser, Dialog, Page, ViewportSize

from tests.process_platform import ProcessPlatform

SHOTS = Path(os.environ["WORKSPACE_SCREENSHOTS"]) if os.environ.get("WORKSPACE_SCREENSHOTS") else None
SERIOUS = ("serious", "critical")
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


async def _confirm(dialog: Dialog) -> None:
    await dialog.accept()


async def signed_in(
    chromium: Browser, platform: ProcessPlatform, user: str, path: str = "/", viewport: ViewportSize = DESKTOP
) -> Page:
    """A fresh browser of `user`, signed in through the identity provider's form, on `path`. The person answers
    the page's "are you sure?" (a publish, a replay of every dead letter) with yes, as one who pressed it would."""
    context = await chromium.new_context(viewport=viewport, locale="en-GB", bypass_csp=True)
    page = await context.new_page()
    page.on("dialog", _confirm)
    await page.goto(platform.url("workspace") + path)
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", f"{user}-dev")
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url.startswith(platform.url("workspace") + path), page.url
    return page


async def accessible(page: Page, name: str) -> None:
    """No axe-core violation of impact serious or critical on the page (and its screenshot, when asked for)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in SERIOUS]  # fmt: skip
    assert bad == [], f"{name}: {bad}"
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
