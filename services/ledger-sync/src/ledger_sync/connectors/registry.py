"""Which connectors exist: how to build one for a tenant's connection, and how to read its webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dunning_kit.clock import Clock
from dunning_kit.outbound import OutboundPolicy
from ledger_sync.connectors import netsuite, quickbooks, stripe, xero
from ledger_sync.connectors.base import Connector, WebhookReceiver
from ledger_sync.connectors.http import BearerToken, ErpHttp, OAuth2RefreshToken, Sleep, deadline_from
from ledger_sync.service_layer.sync import Connection, ConnectorFactory

SaveCredentials = Callable[[dict[str, Any]], Awaitable[None]]


def _quickbooks(
    conn: Connection, save: SaveCredentials, sleep: Sleep, clock: Clock, egress: OutboundPolicy
) -> Connector:
    cfg = conn.config
    if not conn.external_account:
        raise ValueError("a QuickBooks connection needs external_account = the realmId")
    auth = OAuth2RefreshToken(
        token_url=cfg.get("token_url", quickbooks.TOKEN_URL),
        client_id=cfg.get("client_id", ""),
        client_secret=conn.credentials.get("client_secret", ""),
        credentials=conn.credentials,
        save=save,
        now=clock.now,
        deadline=deadline_from(cfg),
    )
    http = ErpHttp(
        cfg.get("base_url", quickbooks.API_URL),
        auth,
        sleep=sleep,
        max_attempts=int(cfg.get("max_attempts", 6)),
        egress=egress,
        deadline=deadline_from(cfg),
    )
    return quickbooks.QuickBooks(http, conn.external_account, cfg, clock.now)


def _stripe(conn: Connection, save: SaveCredentials, sleep: Sleep, clock: Clock, egress: OutboundPolicy) -> Connector:
    cfg = conn.config
    http = ErpHttp(
        cfg.get("base_url", stripe.API_URL),
        BearerToken(conn.credentials.get("api_key", "")),
        sleep=sleep,
        max_attempts=int(cfg.get("max_attempts", 6)),
        deadline=deadline_from(cfg),
        default_headers={"Stripe-Version": cfg.get("api_version", "2024-06-20")},
        egress=egress,
    )
    return stripe.Stripe(http, cfg, clock.now)


def _xero(conn: Connection, save: SaveCredentials, sleep: Sleep, clock: Clock, egress: OutboundPolicy) -> Connector:
    cfg = conn.config
    if not conn.external_account:
        raise ValueError("a Xero connection needs external_account = the Xero tenantId")
    auth = OAuth2RefreshToken(
        token_url=cfg.get("token_url", xero.TOKEN_URL),
        client_id=cfg.get("client_id", ""),
        client_secret=conn.credentials.get("client_secret", ""),
        credentials=conn.credentials,
        save=save,
        now=clock.now,
        deadline=deadline_from(cfg),
    )
    http = ErpHttp(
        cfg.get("base_url", xero.API_URL),
        auth,
        sleep=sleep,
        max_attempts=int(cfg.get("max_attempts", 6)),
        deadline=deadline_from(cfg),
        default_headers={"xero-tenant-id": conn.external_account},
        egress=egress,
    )
    return xero.Xero(http, cfg, clock.now)


def _netsuite(conn: Connection, save: SaveCredentials, sleep: Sleep, clock: Clock, egress: OutboundPolicy) -> Connector:
    cfg, creds = conn.config, conn.credentials
    account = conn.external_account or cfg.get("account", "")
    if not account:
        raise ValueError("a NetSuite connection needs external_account = the account id (e.g. 1234567_SB1)")
    auth = netsuite.OAuth1TokenBased(
        account=account,
        consumer_key=creds.get("consumer_key", ""),
        consumer_secret=creds.get("consumer_secret", ""),
        token_id=creds.get("token_id", ""),
        token_secret=creds.get("token_secret", ""),
    )
    http = ErpHttp(
        cfg.get("base_url", netsuite.rest_host(account)),
        auth,
        sleep=sleep,
        max_attempts=int(cfg.get("max_attempts", 6)),
        egress=egress,
        deadline=deadline_from(cfg),
    )
    return netsuite.NetSuite(http, cfg, clock.now)


FACTORIES: dict[str, ConnectorFactory] = {
    netsuite.NAME: _netsuite,
    xero.NAME: _xero,
    quickbooks.NAME: _quickbooks,
    stripe.NAME: _stripe,
}

# The connection settings that are URLs the service will call: checked against the outbound policy when saved.
URL_SETTINGS = ("base_url", "token_url")

RECEIVERS: dict[str, WebhookReceiver] = {
    quickbooks.NAME: quickbooks.QuickBooksWebhooks(),
    stripe.NAME: stripe.StripeWebhooks(),
    xero.NAME: xero.XeroWebhooks(),
}
