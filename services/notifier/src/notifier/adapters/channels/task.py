"""Collector task: the step goes to a person. The "provider" is our own table, listed via GET /v1/tasks;
one task per delivery (unique delivery_id), so a repeated attempt never creates a second task."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notifier.adapters import orm
from notifier.domain.messages import OutboundMessage, SendReceipt


class CollectorTasks:
    name = "collector"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], now: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.now = now

    async def send(self, message: OutboundMessage) -> SendReceipt:
        t = orm.collector_tasks.c
        delivery_id = uuid.UUID(message.delivery_id)
        async with self.sessions() as session, session.begin():
            await session.execute(
                insert(orm.collector_tasks)
                .values(
                    id=uuid.uuid4(),
                    tenant_id=message.tenant_id,
                    customer_id=message.customer_id,
                    delivery_id=delivery_id,
                    step_id=message.step_id,
                    title=message.subject,
                    body=message.text,
                    details=message.payload,
                    created_at=self.now(),
                )
                .on_conflict_do_nothing(index_elements=[t.delivery_id])
            )
            task_id = await session.scalar(select(t.id).where(t.delivery_id == delivery_id))
        return SendReceipt(provider=self.name, provider_message_id=str(task_id))
