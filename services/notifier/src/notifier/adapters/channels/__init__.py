"""Provider adapters: each implements `ChannelProvider.send(OutboundMessage) -> SendReceipt`."""
