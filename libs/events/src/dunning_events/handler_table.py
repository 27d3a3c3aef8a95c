"""A consumer's behaviour as one table keyed by the events' data classes, and the one function that turns such a
table into the batch handler a consumer runs (`dunning_events.consumer.BatchHandler`).

An entry applies one event at a time (`on`) or a run of events of its type at once (`on_run`: set-wise, one
statement for the thousand invoices of an ERP sync). Reading the table tells what a service reacts to, and mypy
checks every handler against `Envelope[ThatData]`: `on(PaymentApplied, h)` needs `h(context, Envelope[PaymentApplied])`.

Order inside a batch (the consumer has already dropped what the inbox saw, and holds the batch's transaction):
- by default the batch is applied in its order; the events of a set-wise type that follow one another form one run,
  applied where the run stands (events of types the table does not name are skipped and do not end a run);
- a service whose events of different customers commute may split the batch into layers (`layers=`): inside a
  layer the one-at-a-time events are applied in order, then each set-wise type's events as one run.
Every event is applied inside its consumer span. A run is applied inside its first event's span, after each of its
events has entered its own span once, where `in_span` lets the context note that event's trace.
Dispatch costs one dict lookup per event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from dunning_events.consumer import BatchConsumer, ConsumedEvent
from dunning_events.envelope import Envelope, EventData
from dunning_events.events import EVENT_TYPES

C = TypeVar("C")  # what the handlers work on for one batch: the session, or a service object built on it
D = TypeVar("D", bound=EventData)

# What a handler returns is not used (a projection may tell its caller whether it applied the fact).
OneHandler = Callable[[C, Envelope[D]], Awaitable[object]]
RunHandler = Callable[[C, list[Envelope[D]]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Reaction(Generic[C]):
    """One entry of a table: what happens when events of `event`'s type arrive (exactly one of the two is set)."""

    event: type[EventData]
    one: Callable[[C, Envelope[Any]], Awaitable[object]] | None = None
    run: Callable[[C, list[Envelope[Any]]], Awaitable[object]] | None = None

    @property
    def setwise(self) -> bool:
        return self.run is not None


def on(event: type[D], handler: OneHandler[C, D]) -> Reaction[C]:
    """Apply each event of this type on its own."""
    return Reaction(event, one=handler)


def on_run(event: type[D], handler: RunHandler[C, D]) -> Reaction[C]:
    """Apply consecutive events of this type set-wise, as one call with their envelopes in order."""
    return Reaction(event, run=handler)


class HandlerTable(Mapping[type[EventData], Reaction[C]]):
    """The index of a consumer's behaviour: data class -> reaction. A class appears once."""

    def __init__(self, *reactions: Reaction[C]) -> None:
        self._by_class: dict[type[EventData], Reaction[C]] = {}
        for reaction in reactions:
            if reaction.event in self._by_class:
                raise ValueError(f"{reaction.event.__name__} appears twice in the handler table")
            self._by_class[reaction.event] = reaction
        # What dispatch looks up: the envelope's type string, no class resolution per event.
        self.by_type: dict[str, Reaction[C]] = {cls.event_type: r for cls, r in self._by_class.items()}

    def __getitem__(self, event: type[EventData]) -> Reaction[C]:
        return self._by_class[event]

    def __iter__(self) -> Iterator[type[EventData]]:
        return iter(self._by_class)

    def __len__(self) -> int:
        return len(self._by_class)

    @property
    def topics(self) -> frozenset[str]:
        """The topics the table's events travel on: what its consumer must subscribe to."""
        return frozenset(cls.topic for cls in self._by_class)


def table_problems(table: HandlerTable[Any], subscribed: Iterable[str]) -> list[str]:
    """What is wrong with a table for a consumer subscribed to `subscribed` (empty when nothing): a key that is no
    published event type (dunning_events.events), or whose topic the consumer does not read (its handler would
    never run). The services' tests assert this is empty."""
    topics = set(subscribed)
    problems = []
    for cls in table:
        if EVENT_TYPES.get(cls.event_type) is not cls:
            problems.append(f"{cls.__name__} is not a known event type")
        elif cls.topic not in topics:
            problems.append(f"{cls.__name__} travels on {cls.topic}, which no consumer of this table reads")
    return problems


def tables_read_by(consumers: Iterable[BatchConsumer]) -> list[tuple[HandlerTable[Any], set[str]]]:
    """Each handler table the consumers run, with the topics its consumers subscribe to; a consumer whose apply
    function is not built from a table is an error (every service's behaviour is indexed by one)."""
    found: dict[int, tuple[HandlerTable[Any], set[str]]] = {}
    for consumer in consumers:
        if not isinstance(consumer.handler, TableApply):
            raise TypeError(f"consumer {consumer.group} does not apply a handler table")
        table = consumer.handler.table
        found.setdefault(id(table), (table, set()))[1].update(consumer.topics)
    return list(found.values())


Layers = Callable[[list[ConsumedEvent]], list[list[ConsumedEvent]]]


class TableApply(Generic[C]):
    """The batch handler built from a table (a `BatchHandler`); `table` stays reachable for the tests that check
    it against the consumer's topics."""

    def __init__(
        self,
        table: HandlerTable[C],
        *,
        group: str,
        context: Callable[[AsyncSession], C],
        finish: Callable[[C, list[ConsumedEvent]], Awaitable[None]] | None = None,
        layers: Layers | None = None,
        in_span: Callable[[C, Envelope[Any]], None] | None = None,
    ) -> None:
        self.table = table
        self.group = group
        self._by_type = table.by_type
        self._context = context
        self._finish = finish
        self._layers = layers
        self._in_span = in_span

    async def __call__(self, session: AsyncSession, events: list[ConsumedEvent]) -> None:
        ctx = self._context(session)
        if self._layers is None:
            await self._apply_in_order(ctx, events)
        else:
            for layer in self._layers(events):
                await self._apply_layer(ctx, layer)
        if self._finish is not None:
            await self._finish(ctx, events)

    async def _apply_in_order(self, ctx: C, events: list[ConsumedEvent]) -> None:
        by_type, group = self._by_type, self.group
        run: list[ConsumedEvent] = []
        run_of: Reaction[C] | None = None
        for ev in events:
            reaction = by_type.get(ev.type)
            if reaction is None:
                continue
            if reaction.one is None:
                if reaction is not run_of:
                    if run_of is not None:
                        await self._apply_run(ctx, run_of, run)
                    run, run_of = [], reaction
                run.append(ev)
                continue
            if run_of is not None:
                await self._apply_run(ctx, run_of, run)
                run, run_of = [], None
            with ev.traced(group):
                await reaction.one(ctx, ev.envelope)
        if run_of is not None:
            await self._apply_run(ctx, run_of, run)

    async def _apply_layer(self, ctx: C, layer: list[ConsumedEvent]) -> None:
        by_type, group = self._by_type, self.group
        runs: dict[str, list[ConsumedEvent]] = {}
        for ev in layer:
            reaction = by_type.get(ev.type)
            if reaction is None:
                continue
            if reaction.one is None:
                runs.setdefault(ev.type, []).append(ev)
                continue
            with ev.traced(group):
                await reaction.one(ctx, ev.envelope)
        for kind, run in runs.items():
            await self._apply_run(ctx, by_type[kind], run)

    async def _apply_run(self, ctx: C, reaction: Reaction[C], run: list[ConsumedEvent]) -> None:
        assert reaction.run is not None
        in_span, group = self._in_span, self.group
        for other in run[1:]:
            with other.traced(group):  # each event keeps its consumer span; its trace goes on from it
                if in_span is not None:
                    in_span(ctx, other.envelope)
        with run[0].traced(group):
            if in_span is not None:
                in_span(ctx, run[0].envelope)
            await reaction.run(ctx, [r.envelope for r in run])


def consumer_apply(
    table: HandlerTable[C],
    *,
    group: str,
    context: Callable[[AsyncSession], C],
    finish: Callable[[C, list[ConsumedEvent]], Awaitable[None]] | None = None,
    layers: Layers | None = None,
    in_span: Callable[[C, Envelope[Any]], None] | None = None,
) -> TableApply[C]:
    """The consumer's apply function (`ServiceRuntime.add_consumer`'s handler) for `table`.

    `context(session)` builds what the handlers work on, once per batch; `finish(context, events)` runs after the
    batch's events (all of them, the skipped included), in the same transaction: flush what was buffered, record
    positions. `layers` and `in_span`: see the module's docstring."""
    return TableApply(table, group=group, context=context, finish=finish, layers=layers, in_span=in_span)
