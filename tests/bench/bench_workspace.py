"""The workspace's pages at a tenant with 1,000,000 open invoices.

- `workspace_page_p95_ms`: the slowest page's p95, in ms, of the pages whose work grows with the portfolio: the
  dashboard (`/`: six figures from insights), the portfolio (`/portfolio`, largest balance first), the worklist
  (`/worklist`: broken promises, disputes, tasks, failed messages, ERP quarantine) and a policy (`/policies/default`).
  insights holds 1,000,000 open and 500,000 settled invoices over 18 months (seeded by COPY, as for its own bench;
  1,000 of them disputed); the other four services run beside it with the demo policy and nothing else (the
  worklist's other sources are per-person lists, not the portfolio). Every service, the workspace and insights
  each one process on one simulated clock (the actor header the workspace signs is checked against it), the
  workspace signed in by a session row, the pages fetched one at a time over HTTP. Target p95 < 300 ms.
  Latencies: no raw baseline.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import statistics
import time
from datetime import timedelta

import httpx
from sqlalchemy import text

from dunning_kit.db import make_engine

from .bench_insights import ENV, NOW, TENANT, TODAY, missing, not_available, serves
from .harness import BenchContext, Figure
from .insights_seed import seed_open_book
from .processes import ServiceReplicas

SAMPLES = 40
WARM_UP = 3
PAGES = ("/", "/portfolio", "/worklist", "/policies/default")
OTHERS = {"ledger-sync": "ledger_sync", "policy-engine": "policy_engine", "notifier": "notifier",
          "promise-tracker": "promise_tracker"}  # fmt: skip
DISPUTED = 1_000


async def page_p95(http: httpx.AsyncClient, path: str) -> tuple[float, float]:
    """p95 and p50 in ms of GET `path` (after WARM_UP untimed calls); every answer must be the page, whole."""
    for _ in range(WARM_UP):
        (await http.get(path)).raise_for_status()
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        r = await http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:500]}"
        assert "could not be loaded" not in r.text, f"{path}: a part of the page failed:\n{r.text[:3000]}"
    cuts = statistics.quantiles(times, n=20)
    return cuts[18], statistics.median(times)


async def run(ctx: BenchContext) -> list[Figure]:
    key = "workspace_page_p95_ms"
    why = missing("workspace.entrypoints.dashboard") or missing("workspace.entrypoints.worklist")
    if why:
        return not_available(key, why)
    database_url = ctx.fresh_database()
    engine = make_engine(database_url, "insights", pool_size=1)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        book = await seed_open_book(engine, tenant_id=TENANT, today=TODAY, open_invoices=ctx.n(1_000_000))
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE invoices SET disputed = true WHERE tenant_id = :t AND invoice_id IN (SELECT invoice_id "
                     "FROM invoices WHERE tenant_id = :t AND balance <> 0 ORDER BY invoice_id LIMIT :n)"),
                {"t": TENANT, "n": DISPUTED},
            )  # fmt: skip
            await conn.execute(text("ANALYZE invoices"))
        print(
            f"  seeded {book.open_invoices:,} open invoices ({DISPUTED:,} disputed) in {book.seconds:.0f}s", flush=True
        )
        urls = {}
        for name, module in {**OTHERS, "insights": "insights"}.items():
            replicas = ServiceReplicas(module, 1, database_url=database_url,
                                       bootstrap_servers=ctx.broker.bootstrap_servers, env=ENV, clock=NOW)  # fmt: skip
            stack.push_async_callback(replicas.stop)
            await replicas.wait_until("/readyz", timeout=90, what=f"{name} to be ready")
            urls[name] = replicas.urls[0]
        workspace = ServiceReplicas(
            "workspace", 1, database_url=database_url, bootstrap_servers=ctx.broker.bootstrap_servers, clock=NOW,
            env={**ENV, "WORKSPACE_SERVICE_URLS": ",".join(f"{n}={u}" for n, u in urls.items()),
                 "WORKSPACE_API_KEYS": f"{TENANT}=acme-admin-key", "WORKSPACE_COOKIE_SECURE": "false"},
        )  # fmt: skip
        stack.push_async_callback(workspace.stop)
        await workspace.wait_until("/readyz", timeout=90, what="the workspace to be ready")
        why = await serves(urls["insights"], "/v1/portfolio")
        if why:
            return not_available(key, why)
        cookie = secrets.token_urlsafe(32)
        sessions = make_engine(database_url, "workspace", pool_size=1)
        stack.push_async_callback(sessions.dispose)
        async with sessions.begin() as conn:
            await conn.execute(
                text("INSERT INTO people_sessions (session_hash, subject, name, email, tenant_id, role, csrf_token, "
                     "created_at, last_seen_at, expires_at) VALUES (:h, 'sub-bench', 'Bench Admin', "
                     "'bench@acme.test', :t, 'admin', :c, :now, :now, :until)"),
                {"h": hashlib.sha256(cookie.encode()).hexdigest(), "t": TENANT, "c": secrets.token_urlsafe(16),
                 "now": NOW, "until": NOW + timedelta(days=1)},
            )  # fmt: skip
        measured = {}
        async with httpx.AsyncClient(
            base_url=workspace.urls[0], cookies={"workspace_session": cookie}, timeout=60
        ) as browser:
            for path in PAGES:
                measured[path] = await page_p95(browser, path)
    worst = max(measured, key=lambda p: measured[p][0])
    each = ", ".join(f"{p} p95 {v[0]:.0f} ms (p50 {v[1]:.0f})" for p, v in measured.items())
    return [
        Figure(key, measured[worst][0], "ms", None,
               f"slowest page {worst}; {each}; {book.open_invoices:,} open invoices, {SAMPLES} loads a page; "
               f"target < 300 ms"),
    ]  # fmt: skip
