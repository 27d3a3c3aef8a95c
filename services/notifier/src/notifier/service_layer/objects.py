"""The notifier's own objects, held by its runtime next to the kit's parts: `ServiceRuntime[Settings, Notifier]`
(bootstrap builds them; routes get them through entrypoints/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass

from dunning_kit.clock import Clock
from dunning_kit.outbound import OutboundPolicy
from dunning_kit.runtime import ServiceRuntime
from notifier.adapters.channel_secrets import ChannelSecrets
from notifier.domain.rendering import Renderer
from notifier.service_layer.compose import Composer
from notifier.service_layer.dispatcher import Dispatcher, ProviderRegistry
from notifier.settings import Settings


@dataclass
class Notifier:
    """What the routes need besides the kit's parts (`runtime.objects`)."""

    settings: Settings
    clock: Clock
    renderer: Renderer
    composer: Composer
    providers: ProviderRegistry
    dispatcher: Dispatcher
    egress: OutboundPolicy  # which tenant-configured targets (webhook endpoints) may be called
    secrets: ChannelSecrets  # the webhook signing secrets, encrypted at rest


NotifierRuntime = ServiceRuntime[Settings, Notifier]
