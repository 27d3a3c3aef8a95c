"""A consumer group's priority lane: settlements applied ahead of the backlog in front of them, never ahead of
their own customer's earlier events.

A group reads each partition in offset order, so a payment published while another tenant's 100,000-invoice
import is being applied waits behind every invoice of that import in its partition, however fast the relay
published it. The lane is a second, group-less reader of the group's own partitions (it follows the group's
assignment), starting at the group's committed offsets. It looks at every record's key and headers only, and
applies, in the group's name (the group's inbox and handler, one transaction), the records the relay marked
`dunning-priority` (settlements, see outbox.py) whose key has no earlier record the group has not applied yet.
The group goes on applying everything in order and, reaching a record the lane applied, skips it (inbox). Reading
and applying run side by side: while one transaction applies what was found, reading goes on, and the next
transaction takes everything found meanwhile, so a slow apply never leaves the lane behind the partition's end.

Guarantees:

- Per key (`tenant_id:customer_id`) effects keep the partition's order: a record is applied ahead only when every
  earlier record of its key from the group's committed offset on was applied ahead too. A payment for an invoice
  whose invoice.created is still in the group's backlog waits for the group. Keys are never ordered against each
  other (records on different partitions never were).
- Exactly once in effect: the lane claims the event id in the group's inbox in the effect's transaction; when the
  group and the lane race for one event they serialize on its inbox row, and the second one skips it.
- Nothing depends on the lane: what it does not apply (blocked behind its key, undecodable, failing, on a partition
  that just moved to another replica) the group applies in order, as without a lane. Only the group commits
  offsets, so lag, readiness and "caught up" keep meaning "applied in order up to here"; a handler that records
  positions of its own must skip the events the lane hands it (`ConsumedEvent.ahead`), as the notifier's
  ledger projection does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from dunning_events import metrics
from dunning_events.codec import PoisonEvent, decode
from dunning_events.consumer import BatchConsumer, ConsumedEvent
from dunning_events.outbox import PRIORITY_HEADER

log = logging.getLogger("dunning.lane")

_PRUNE_AT = 50_000
GIVE_WAY_AT_MOST_S = 1.0  # keys remembered per partition before the ones the group has passed are forgotten


class PriorityLane:
    def __init__(self, group: BatchConsumer) -> None:
        self.group = group
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._applier: asyncio.Task[None] | None = None
        self._assigned: frozenset[TopicPartition] = frozenset()
        # Per partition: each key's last offset read and not applied by the lane (the group has it, or will).
        self._pending: dict[TopicPartition, dict[bytes, int]] = {}
        # Read and found clear, in reading order, waiting for the applier (reading goes on while it applies).
        self._ready: list[tuple[bytes, ConsumedEvent]] = []
        self._has_ready = asyncio.Event()
        # Set while nothing found is waiting or being applied; the group gives way to the lane until then.
        self._idle = asyncio.Event()
        self._idle.set()
        group.give_way = self._give_way

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"priority-lane-{self.group.group}")
        self._applier = asyncio.create_task(self._apply_ready(), name=f"priority-lane-{self.group.group}-apply")

    async def stop(self) -> None:
        self._stopping = True
        self._idle.set()  # the group no longer waits for a lane that is going away
        for task in (self._task, self._applier):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._applier = None

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            reader: AIOKafkaConsumer | None = None
            try:
                reader = AIOKafkaConsumer(
                    **self.group.security.client_kwargs(),
                    bootstrap_servers=self.group.bootstrap_servers,
                    client_id=f"{self.group.client_id}-lane",
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=self.group.poll_timeout_ms,
                )
                await reader.start()
                self._assigned = frozenset()
                while not self._stopping:
                    await self._round(reader)
                    backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: the group carries on alone meanwhile
                log.warning("priority lane of %s: %s; restarting in %.1fs", self.group.group, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if reader is not None:
                    await reader.stop()

    async def _round(self, reader: AIOKafkaConsumer) -> None:
        assignment = self.group.assignment()
        if assignment != self._assigned:
            await self._follow(reader, assignment)
        if not self._assigned:
            await asyncio.sleep(self.group.poll_timeout_ms / 1000)
            return
        fetched = await reader.getmany(timeout_ms=self.group.poll_timeout_ms, max_records=self.group.max_records)
        for tp, records in fetched.items():
            floor = self.group.committed_offsets.get(tp, 0)
            pending = self._pending.setdefault(tp, {})
            for record in records:
                if record.offset < floor:
                    continue  # the group has applied it
                key = record.key or b""
                event = _settlement(record) if pending.get(key, -1) < floor else None
                if event is None:
                    pending[key] = record.offset  # this key's later records wait for the group
                else:
                    self._ready.append((key, event))
            if records and records[-1].offset + 1 < floor:
                reader.seek(tp, floor)  # the group is ahead of the lane: nothing before its offset to look at
            if len(pending) > _PRUNE_AT:
                self._pending[tp] = {k: o for k, o in pending.items() if o >= floor}
        if self._ready:
            self._idle.clear()
            self._has_ready.set()

    async def _apply_ready(self) -> None:
        """Apply what was found clear, in reading order, one transaction at a time (each holds all found so far)."""
        while True:
            await self._has_ready.wait()
            self._has_ready.clear()
            ahead, self._ready = self._ready, []
            if ahead:
                await self._apply(ahead)
            if not self._ready:
                self._idle.set()

    async def _give_way(self) -> None:
        """The group's batch waits while the lane has settlements to apply - a bounded wait: a lane that is
        slow (its database away, a stuck apply) never stops the group, which applies everything in order."""
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=GIVE_WAY_AT_MOST_S)

    async def _apply(self, ahead: list[tuple[bytes, ConsumedEvent]]) -> None:
        try:
            await self.group.apply([event for _, event in ahead])
        except Exception as exc:
            # Left to the group, in order; so are their keys' later records, read meanwhile or still to come.
            log.warning("priority lane of %s: %d events left to the group (%s)", self.group.group, len(ahead), exc)
            failed = {(_partition(ev), key) for key, ev in ahead}
            later = [(key, ev) for key, ev in self._ready if (_partition(ev), key) in failed]
            self._ready = [(key, ev) for key, ev in self._ready if (_partition(ev), key) not in failed]
            for key, ev in [*ahead, *later]:
                pending = self._pending.setdefault(_partition(ev), {})
                pending[key] = max(pending.get(key, -1), ev.offset)
            return
        metrics.APPLIED_AHEAD.labels(group=self.group.group).inc(len(ahead))

    async def _follow(self, reader: AIOKafkaConsumer, assignment: frozenset[TopicPartition]) -> None:
        """Read the group's partitions from the group's committed offsets (everything before them is applied)."""
        reader.assign(list(assignment))
        self._pending = {}
        for tp in assignment:
            reader.seek(tp, await self.group.committed_offset(tp))
        self._assigned = assignment


def _settlement(record: ConsumerRecord[bytes, bytes]) -> ConsumedEvent | None:
    """The record as an event if the relay marked it priority and it decodes (else the group dead-letters it)."""
    if PRIORITY_HEADER not in (record.headers or ()):
        return None
    try:
        env = decode(record.headers, record.value)
    except PoisonEvent:
        return None
    return ConsumedEvent(env, record.topic, record.partition, record.offset, list(record.headers or []), ahead=True)


def _partition(ev: ConsumedEvent) -> TopicPartition:
    return TopicPartition(ev.topic, ev.partition)
