"""The workspace on a phone and with its script, in Debian's chromium on the real stack of test_workspace_day.py
(its fixtures: every service in processes, a customer with an overdue invoice, a collector task):

- at 390x844 the dashboard, worklist, case, policy (YAML and form), template and operations pages do not scroll
  sideways (a wide table scrolls in its own box), the navigation is on the screen, and axe-core finds nothing
  serious or critical;
- with JavaScript on, the template editor re-renders its preview as the person types, and the policy editor
  lists an error at its line as it is typed (the pages without the script are the other tests' business).
"""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.test_workspace_day import CHROMIUM, chromium, platform, seeded  # noqa: F401 - its fixtures
from tests.browser.workspace_browser import PHONE, accessible, signed_in
from tests.process_platform import ProcessPlatform

# One worker runs the module's tests, on one stack (starting it is the expensive part).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("workspace-phone"),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"chromium is not installed at {CHROMIUM}"),
]

PAGES = {  # name: path (an admin sees every page and the widest navigation)
    "dashboard": "/", "worklist": "/worklist", "case": "/customers/C-1", "policy": "/policies/default",
    "policy-form": "/policies/default/form", "template": "/templates/due_date_notice", "operations": "/operations",
}  # fmt: skip


async def overflow(page: Page) -> int:
    """How far the page is wider than the screen, in CSS pixels (0: it fits)."""
    wider: int = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return wider


async def test_every_page_fits_a_phone_with_its_navigation_reachable(
    seeded: ProcessPlatform,  # noqa: F811
    chromium: Browser,  # noqa: F811
) -> None:
    page = await signed_in(chromium, seeded, "adam", "/", viewport=PHONE)
    for name, path in PAGES.items():
        response = await page.goto(seeded.url("workspace") + path)
        assert response is not None and response.status == 200, (name, response and response.status)
        assert await overflow(page) <= 0, name
        for link in ("/", "/worklist", "/policies", "/operations"):
            box = await page.locator(f"header nav a[href='{link}']").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, link, box)
        await accessible(page, f"phone-{name}")


async def test_the_template_preview_follows_the_typing(
    seeded: ProcessPlatform,  # noqa: F811
    chromium: Browser,  # noqa: F811
) -> None:
    page = await signed_in(chromium, seeded, "mona", "/templates/due_date_notice")
    address = page.url
    subject = page.locator("#subject")
    await subject.fill((await subject.input_value()) + " (ref. XQ-4711)")
    # No button pressed, no page loaded: the preview region was replaced with the draft's rendering.
    await expect(page.locator("#previews")).to_contain_text("XQ-4711", timeout=15_000)
    assert page.url == address and await page.locator("#previews").get_attribute("aria-live") == "polite"


async def test_the_policy_editor_lists_an_error_at_its_line_as_it_is_typed(
    seeded: ProcessPlatform,  # noqa: F811
    chromium: Browser,  # noqa: F811
) -> None:
    page = await signed_in(chromium, seeded, "mona", "/policies/default")
    text = await page.input_value("#draft")
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if "offset_days:" in line)
    lines[at] = lines[at].split("offset_days:")[0] + "offset_days: soon"
    await page.fill("#draft", "\n".join(lines))
    mark = page.locator(f"#draft-check button[data-line='{at + 1}']")
    await expect(mark).to_contain_text(f"Line {at + 1}: steps[0].offset_days", timeout=15_000)
    await expect(page.locator("#draft")).to_have_attribute("aria-invalid", "true")
    await mark.click()  # goes to the line: the editor selects it
    selected = await page.evaluate("(() => { const a = document.querySelector('#draft'); "
                                   "return a.value.slice(a.selectionStart, a.selectionEnd); })()")  # fmt: skip
    assert selected == lines[at]
    await page.fill("#draft", text)
    await expect(page.locator("#draft-check")).to_contain_text("No problems found", timeout=15_000)
