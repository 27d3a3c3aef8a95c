"""Templates cannot take the notifier down (issue 12, point 2): a template over its render budget - loops,
string building, time - fails that render with the limit named (422 at save and preview, a failed delivery on
send), allocates nothing big on the way, and the service keeps answering and sending everyone else's mail."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from typing import Any

import pytest

from dunning_kit.testing import RunningService, poll_until
from notifier.domain.default_templates import PARTIALS
from notifier.domain.rendering import Renderer, TemplateRenderError, TemplateSource
from notifier.testing import EventFeed, TopicReader

from .conftest import Fakes, StartNotifier

# The bombs and their cousins: each froze the notifier or allocated 50 MB before.
BOMBS = {
    "nested_range_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested_loops_over_a_list": "{% set r = range(9000)|list %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
    "ljust": "{{ 'x'.ljust(50000000) }}",
    "printf_width": "{{ '%050000000d' % 1 }}",
    "center_filter": "{{ 'x'|center(50000000) }}",
    "format_spec": "{{ '{:>50000000}'.format(1) }}",
    "join": "{{ ('x' * 10000).join('y' * 10000) }}",
    "replace": "{{ ('x' * 10000).replace('', 'y' * 10000) }}",
    "doubling_concat": "{% set ns = namespace(s='xx') %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling_list": "{% set ns = namespace(l=[1]) %}{% for i in range(26) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
    "slice_filter": "{{ [1]|slice(50000000)|list|length }}",
    "exponential_macro": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "captured_output": "{% set s = 'x'.ljust(100000) %}{% set b %}{% for i in range(1000) %}{{ s }}{% endfor %}{% endset %}",
}  # fmt: skip


def _render_in_thread(renderer: Renderer, source: str) -> tuple[BaseException | None, float, int]:
    """(error, seconds, peak bytes allocated) - in a thread, so a render that never ends fails the test instead
    of hanging it."""
    result: dict[str, Any] = {}

    def run() -> None:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            renderer.render(TemplateSource("bomb", "en", "Reminder", source), {"customer": {"id": "C-1"}})
        except BaseException as exc:
            result["error"] = exc
        result["seconds"] = time.perf_counter() - started
        result["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the render is still running after 10 s"
    return result.get("error"), result["seconds"], result["peak"]


@pytest.mark.parametrize("source", BOMBS.values(), ids=BOMBS.keys())
def test_a_template_bomb_fails_its_render_promptly_without_allocating_it(source: str) -> None:
    error, seconds, peak = _render_in_thread(Renderer(PARTIALS), source)
    assert isinstance(error, TemplateRenderError), f"rendered (or failed otherwise): {error!r}"
    assert error.limit is not None and "render limit exceeded" in error.message, error.message
    assert seconds < 1.0, f"took {seconds:.2f} s"
    assert peak < 20_000_000, f"allocated {peak / 1e6:.0f} MB on the way"


def test_brackets_nested_hundreds_deep_are_refused_at_save_not_a_crash() -> None:
    renderer = Renderer(PARTIALS)
    deep = "{{ " + "(" * 300 + "1" + ")" * 300 + " }}"
    assert renderer.check_syntax("text", deep) == "nested too deeply to compile"
    with pytest.raises(TemplateRenderError, match="nested too deeply"):
        renderer.render(TemplateSource("t", "en", "s", deep), {})


def test_an_ordinary_template_renders_well_within_the_budget() -> None:
    source = (
        "{% for i in invoices %}{{ loop.index }}. {{ '%-10s' % i.number }} {{ '{:>12}'.format(i.balance) }}\n"
        "{% endfor %}{{ invoices|map(attribute='number')|join(', ') }} {{ 'Total'|center(20) }} {{ 'a' ~ 'b' }}"
    )
    invoices = [{"number": f"2026-{n:04}", "balance": "10.00"} for n in range(2000)]
    out = Renderer(PARTIALS).render(TemplateSource("t", "en", "s", source), {"invoices": invoices})
    assert out.text.startswith("1. 2026-0000         10.00\n2. ") and "2026-1999" in out.text


@pytest.mark.parametrize("name", ["nested_range_loops", "ljust", "printf_width", "center_filter"])
async def test_a_bomb_is_refused_at_preview_and_at_save_with_the_limit_named(
    notifier: RunningService, name: str
) -> None:
    bomb = {"locale": "en", "subject": "Reminder", "text": BOMBS[name]}
    async with notifier.client() as api, notifier.client("acme-admin-key") as admin:
        preview = await api.post("/v1/templates/firm_reminder/preview", json={"template": bomb})
        assert preview.status_code == 422, preview.text
        [problem] = preview.json()["errors"]
        assert problem["field"] == "template.text" and "render limit exceeded" in problem["reason"], problem

        saved = await admin.put("/v1/templates/firm_reminder", json=bomb)
        assert saved.status_code == 422, saved.text
        [problem] = saved.json()["errors"]
        assert problem["field"] == "text" and "render limit exceeded" in problem["reason"], problem
        stored = (await api.get("/v1/templates/firm_reminder", params={"locale": "en"})).json()
        assert stored["origin"] == "shipped", "nothing was saved"


async def test_healthz_answers_within_a_second_while_a_bomb_renders(start_notifier: StartNotifier) -> None:
    # A bomb only the deadline stops (2^40 macro calls), with a deadline long enough to probe during it.
    notifier = await start_notifier(template_render_timeout_seconds=3.0)
    bomb = {"locale": "en", "subject": "Reminder", "text": BOMBS["exponential_macro"]}
    async with notifier.client() as api, notifier.client(None) as probe:
        # The probe's connection is opened first: what is timed below is the service's answer during the render,
        # not a connection set up on a loaded test machine.
        assert (await probe.get("/healthz")).status_code == 200
        started = time.perf_counter()
        preview = asyncio.create_task(api.post("/v1/templates/firm_reminder/preview", json={"template": bomb}))
        probes = []  # probed from the start and all through the render, every 0.2 s
        while not preview.done() and len(probes) < 8:
            t0 = time.perf_counter()
            answer = await probe.get(
                "/healthz", timeout=1.0
            )  # the client's 1 s timeout fails the test if it does not answer
            probes.append((answer.status_code, time.perf_counter() - t0))
            await asyncio.sleep(0.2)  # the probe interval: liveness is sampled through the render, not waited for
        response = await preview
    assert len(probes) >= 5 and all(code == 200 and s < 1.0 for code, s in probes), probes
    assert response.status_code == 422 and "longer than 3 s" in response.json()["errors"][0]["reason"]
    assert time.perf_counter() - started < 6.0


@pytest.mark.parametrize("name", ["nested_range_loops", "exponential_macro"])
async def test_a_bomb_at_send_fails_that_delivery_and_another_tenants_email_is_sent(
    notifier: RunningService, feed: EventFeed, fakes: Fakes, notifications: TopicReader, name: str
) -> None:
    # Harmless with the sample data a save renders, a bomb with a real customer's: the save lets it through.
    bomb = {
        "locale": "en",
        "subject": "Reminder",
        "text": f"{{% if customer.id != 'SAMPLE' %}}{BOMBS[name]}{{% endif %}}",
    }
    async with notifier.client("acme-admin-key") as admin:
        assert (await admin.put("/v1/templates/firm_reminder", json=bomb)).status_code == 200
    await feed.publish(feed.customer(customer_id="C-1"), feed.invoice(customer_id="C-1"), tenant_id="acme")
    await feed.publish(
        feed.customer(customer_id="G-1", email="ap@globex.example"), feed.invoice(customer_id="G-1"),
        tenant_id="globex",
    )  # fmt: skip
    steps = [feed.step(step_id=f"S-{n}", template_id="firm_reminder", customer_id="C-1") for n in range(3)]
    await feed.publish(*steps, tenant_id="acme")
    await feed.publish(feed.step(step_id="S-G", template_id="firm_reminder", customer_id="G-1"), tenant_id="globex")

    # The dispatcher renders on the event loop: /healthz answers within a second all along.
    probes: list[float] = []
    async with notifier.client(None) as probe:
        while len(notifications.of_type("notification.failed")) < 3 or not fakes.smtp.received:
            started = time.perf_counter()
            assert (await probe.get("/healthz", timeout=1.0)).status_code == 200
            probes.append(time.perf_counter() - started)
            assert len(probes) < 200, "the deliveries were not decided within ~20 s"
            await asyncio.sleep(0.1)  # the probe interval of a bounded poll (200 probes), not a guessed wait
    assert max(probes) < 1.0, probes

    failed = notifications.of_type("notification.failed")
    assert {f.tenant_id for f in failed} == {"acme"} and len(failed) == 3
    assert all("render limit exceeded" in f.data.reason for f in failed), [f.data.reason for f in failed]
    await notifications.wait_for("notification.sent")
    mail = await poll_until(lambda: _first_mail(fakes), what="globex's reminder")
    assert mail.rcpt_tos == ["ap@globex.example"]


async def _first_mail(fakes: Fakes) -> Any:
    return fakes.smtp.received[0] if fakes.smtp.received else None
