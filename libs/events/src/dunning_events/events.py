"""Every event type of the platform as a typed, versioned model; the catalogue maps type -> model."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dunning_events import topics
from dunning_events.envelope import EventData
from dunning_events.money import DecimalStr, Money

Channel = Literal["email", "sms", "voice", "letter", "webhook", "task"]
InvoiceStatus = Literal["open", "paid", "void", "written_off"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---------------------------------------------------------------- ledger (ledger-sync)


class Contact(_Part):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    role: str = "billing"


class ConsentFlags(_Part):
    """Channels the customer agreed to be contacted on. Automated SMS and calls need consent on record."""

    email: bool = True
    sms: bool = False
    voice: bool = False
    letter: bool = True
    webhook: bool = True


class PostalAddress(_Part):
    """Where letters go (the notifier's letter channel)."""

    lines: list[str] = Field(default_factory=list, description="Street lines")
    postal_code: str = ""
    city: str = ""
    region: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2")


class CustomerUpserted(EventData):
    event_type: ClassVar[str] = "customer.upserted"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "customer_id"
    description: ClassVar[str] = "A customer was created or changed in the canonical ledger."

    name: str
    contacts: list[Contact] = Field(default_factory=list)
    time_zone: str = "UTC"
    locale: str = "en"
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2, for holiday calendars")
    tags: list[str] = Field(default_factory=list)
    segment: str | None = None
    consent: ConsentFlags = Field(default_factory=ConsentFlags)
    credit_hold: bool = False
    postal_address: PostalAddress | None = Field(default=None, description="Billing address for letters")


class InvoiceSnapshot(EventData):
    """Fields shared by every invoice event: the invoice as it is after the change."""

    subject_field: ClassVar[str] = "invoice_id"

    invoice_id: str
    number: str
    currency: str
    total: DecimalStr
    balance: DecimalStr
    issue_date: date
    due_date: date | None = None
    terms: str | None = None
    status: InvoiceStatus = "open"
    disputed: bool = False
    version: int = Field(
        default=0,
        ge=0,
        description=(
            "The invoice's version in the ledger after this change: assigned by ledger-sync, one higher with every "
            "change of the invoice (payments, credits, voids and disputes included). A consumer ignores a snapshot "
            "older than one it has applied (a replayed dead letter must not undo a payment). 0: not versioned"
        ),
    )


def supersedes(version: int, applied: int) -> bool:
    """Whether a ledger fact about an invoice at `version` is newer than the `applied` version a consumer holds.

    Versions come from ledger-sync (InvoiceSnapshot.version, Allocation.invoice_version_after): an older or equal one
    is a redelivery or a replayed dead letter, and applying it would undo what came after (reopen a paid invoice).
    0 means "not versioned" (written before versions existed): always applied, as before."""
    return version == 0 or version > applied


class InvoiceCreated(InvoiceSnapshot):
    event_type: ClassVar[str] = "invoice.created"
    topic: ClassVar[str] = topics.LEDGER
    description: ClassVar[str] = "A new receivable invoice entered the ledger."


class FieldChange(_Part):
    field: str
    old: str | None
    new: str | None


class InvoiceUpdated(InvoiceSnapshot):
    event_type: ClassVar[str] = "invoice.updated"
    topic: ClassVar[str] = topics.LEDGER
    description: ClassVar[str] = "An invoice changed; `changes` lists each changed field's old and new value."

    changes: list[FieldChange] = Field(default_factory=list)


class InvoiceVoided(InvoiceSnapshot):
    event_type: ClassVar[str] = "invoice.voided"
    topic: ClassVar[str] = topics.LEDGER
    description: ClassVar[str] = "An invoice was voided (status void) or written off (status written_off)."
    priority: ClassVar[bool] = True

    reason: str | None = None


class Allocation(_Part):
    """Part of a payment or credit note applied to one invoice, with the invoice's resulting balance."""

    invoice_id: str
    amount: DecimalStr
    invoice_balance_after: DecimalStr
    invoice_status_after: InvoiceStatus
    invoice_version_after: int = Field(
        default=0, ge=0, description="The invoice's version after this allocation (invoice snapshots' `version`)"
    )


class PaymentApplied(EventData):
    event_type: ClassVar[str] = "payment.applied"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "payment_id"
    description: ClassVar[str] = "A payment was recorded and allocated to invoices."
    priority: ClassVar[bool] = True

    payment_id: str
    currency: str
    amount: DecimalStr
    received_on: date
    allocations: list[Allocation]
    unapplied: DecimalStr = Field(description="Over-payment kept as unapplied credit")


class PaymentReversed(EventData):
    event_type: ClassVar[str] = "payment.reversed"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "payment_id"
    description: ClassVar[str] = "A payment was reversed (bounced, charged back); its allocations are undone."
    priority: ClassVar[bool] = True

    payment_id: str
    currency: str
    amount: DecimalStr
    reason: str | None = None
    allocations: list[Allocation] = Field(description="The undone allocations with each invoice's balance after")


class CreditNoteApplied(EventData):
    event_type: ClassVar[str] = "credit_note.applied"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "credit_note_id"
    description: ClassVar[str] = "A credit note was allocated to invoices, reducing their balances."
    priority: ClassVar[bool] = True

    credit_note_id: str
    currency: str
    total: DecimalStr
    issued_on: date
    allocations: list[Allocation]


class DisputeOpened(EventData):
    event_type: ClassVar[str] = "dispute.opened"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "invoice_id"
    description: ClassVar[str] = "The customer disputes an invoice; dunning on it pauses."

    invoice_id: str
    reason: str | None = None
    invoice_version: int = Field(default=0, ge=0, description="The invoice's version after the dispute opened")


class DisputeResolved(EventData):
    event_type: ClassVar[str] = "dispute.resolved"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "invoice_id"
    description: ClassVar[str] = "A dispute on an invoice ended; dunning resumes where it was."

    invoice_id: str
    resolution: str | None = None
    invoice_version: int = Field(default=0, ge=0, description="The invoice's version after the dispute ended")


class LedgerSynced(EventData):
    event_type: ClassVar[str] = "ledger.synced"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "connector"
    description: ClassVar[str] = (
        "A connector finished a sync: the freshness signal. customer_id is `_tenant` (tenant-wide). Also sent "
        "when a connector is disabled (scheduled false, succeeded false, `error` says so)."
    )

    connector: str
    succeeded: bool
    started_at: AwareDatetime
    finished_at: AwareDatetime
    last_successful_sync_at: AwareDatetime | None
    records_changed: int = 0
    error: str | None = None
    scheduled: bool = Field(
        default=True,
        description=(
            "True for a connector that syncs on a schedule (its silence means stale data); false for a file "
            "import or another push the tenant starts (never stale by silence unless the tenant declares a cadence)"
        ),
    )


ErasureReason = Literal["data_subject_request", "retention", "manual"]


class CustomerErased(EventData):
    event_type: ClassVar[str] = "customer.erased"
    topic: ClassVar[str] = topics.LEDGER
    subject_field: ClassVar[str] = "customer_id"
    description: ClassVar[str] = (
        "The customer's personal data was erased (GDPR Art. 17). Every service deletes or pseudonymises what it "
        "holds about the person (names, addresses, phone numbers, rendered messages, provider payloads, notes), "
        "keeps the money facts and the fact of each contact, and stops dunning the customer. Ledger-sync keeps a "
        "tombstone so no later sync or import brings the data back."
    )

    erased_at: AwareDatetime = Field(description="When the erasure was requested (the injected clock)")
    reason: ErasureReason = "data_subject_request"
    pseudonym: str = Field(min_length=1, description="The name every service shows from now on, e.g. `erased-3f9a1c`")


# ---------------------------------------------------------------- steps (policy-engine)


class StepInvoice(_Part):
    invoice_id: str
    number: str
    total: DecimalStr
    balance: DecimalStr
    due_date: date | None
    days_overdue: int


class Fee(_Part):
    kind: Literal["fixed", "percentage", "statutory_interest", "compensation"]
    description: str
    amount: Money


class NextStep(_Part):
    step_name: str
    at: AwareDatetime = Field(description="When the engine plans to fire it (it may still move: pauses, caps)")


class DunningStepDue(EventData):
    event_type: ClassVar[str] = "dunning.step.due"
    topic: ClassVar[str] = topics.STEPS
    subject_field: ClassVar[str] = "step_id"
    description: ClassVar[str] = (
        "A dunning step is due for a customer: one event per customer, step and currency (consolidated)."
    )

    step_id: str = Field(description="Deterministic idempotency key: same customer, case and step -> same id")
    policy_id: str
    policy_version: int
    step_index: int
    step_name: str
    tone: str
    template_id: str
    channels: list[Channel]
    channel_mode: Literal["all", "fallback"] = Field(
        default="all", description="all: send on every channel; fallback: try in order until one succeeds"
    )
    currency: str
    amount_due: DecimalStr
    invoices: list[StepInvoice]
    fees: list[Fee] = Field(default_factory=list)
    actions: list[Literal["credit_hold", "hand_off_to_collections", "recommend_write_off"]] = Field(
        default_factory=list
    )
    scheduled_for: AwareDatetime
    late: bool = Field(default=False, description="True when the step fires after its planned time")
    deliver_until: AwareDatetime | None = Field(
        default=None,
        description="End of the debtor's allowed contact window (quiet hours, local time): do not deliver after it",
    )
    deliver_from: AwareDatetime | None = Field(
        default=None,
        description="Start of the debtor's allowed contact window: do not deliver before it",
    )
    next_step: NextStep | None = Field(
        default=None,
        description="The step the engine planned after this one (the earliest of the consolidated invoices'); "
        "null when none follows (the policy is exhausted, the case handed off)",
    )


HoldRule = Literal["contact_cap", "consent", "conversation", "other"]


class ChannelHold(_Part):
    channel: Channel
    rule: HoldRule = Field(
        description="contact_cap: the policy's cap was reached; consent: opted out or no consent; conversation: a "
        "telephone conversation about the debt within the last 7 days (12 CFR 1006.14(b)(2)(ii))"
    )
    reason: str = Field(description="The sentence the case's timeline shows")


class DunningStepHeld(EventData):
    event_type: ClassVar[str] = "dunning.step.held"
    topic: ClassVar[str] = topics.STEPS
    subject_field: ClassVar[str] = "customer_id"
    description: ClassVar[str] = (
        "The engine held back channels of a step (a contact cap reached, no consent): sent on the others, or, "
        "with none left, moved to `moved_to` (a cap frees up then) or skipped (`moved_to` null, no step.due)."
    )

    step_name: str
    policy_id: str
    invoice_ids: list[str]
    held: list[ChannelHold] = Field(min_length=1)
    sent: bool = Field(
        default=False,
        description="True when the step went out on the channels left (a dunning.step.due follows); false when it "
        "was held whole: moved (`moved_to`) or skipped",
    )
    moved_to: AwareDatetime | None = Field(
        default=None, description="When the whole step was held: the instant it was moved to; null otherwise"
    )


CallOutcome = Literal["conversation", "no_answer", "voicemail", "wrong_number", "refused_to_talk"]


class DunningCallLogged(EventData):
    event_type: ClassVar[str] = "dunning.call.logged"
    topic: ClassVar[str] = topics.STEPS
    subject_field: ClassVar[str] = "call_id"
    description: ClassVar[str] = (
        "A collector logged a telephone call with the debtor (occurred_at: when it took place). It counts as a call "
        "attempt for the contact caps; a conversation holds every call about its invoices until `no_call_until`."
    )

    call_id: str
    outcome: CallOutcome
    invoice_ids: list[str] = Field(description="The debts the call was about (empty: none open at the time)")
    no_call_until: AwareDatetime | None = Field(
        default=None, description="A conversation: no call about these invoices before this instant; else null"
    )
    logged_by: str | None = Field(default=None, description="The name of the person who logged it, when known")


HandOffOutcome = Literal["sent_to_agency", "kept_in_house", "written_off_recommended"]


class DunningHandOffCompleted(EventData):
    event_type: ClassVar[str] = "dunning.hand_off.completed"
    topic: ClassVar[str] = topics.STEPS
    subject_field: ClassVar[str] = "invoice_id"
    description: ClassVar[str] = (
        "A person completed the hand-off of a debt to collections: what was done with the file (the case itself "
        "was closed `handed_off` by its last step). Once per invoice; the envelope's actor names the person."
    )

    invoice_id: str
    outcome: HandOffOutcome


class DunningStepReplanned(EventData):
    event_type: ClassVar[str] = "dunning.step.replanned"
    topic: ClassVar[str] = topics.STEPS
    subject_field: ClassVar[str] = "step_id"
    description: ClassVar[str] = (
        "A step the notifier held (its contact window had closed, or not opened) gets a new window: deliver its "
        "held deliveries from `deliver_from` until `deliver_until`, still once."
    )

    step_id: str
    invoice_ids: list[str]
    deliver_from: AwareDatetime
    deliver_until: AwareDatetime
    reason: str


class DunningStepCancelled(EventData):
    event_type: ClassVar[str] = "dunning.step.cancelled"
    topic: ClassVar[str] = topics.STEPS
    subject_field: ClassVar[str] = "step_id"
    description: ClassVar[str] = "A scheduled dunning step will not be sent; the reason says why."

    step_id: str
    invoice_ids: list[str]
    reason: str


# ---------------------------------------------------------------- notifications (notifier)


class NotificationOutcome(EventData):
    subject_field: ClassVar[str] = "delivery_id"

    delivery_id: str
    step_id: str
    channel: Channel
    recipient: str | None = Field(default=None, description="Address or number, masked where personal")
    invoice_ids: list[str] = Field(default_factory=list)
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None


class NotificationSent(NotificationOutcome):
    event_type: ClassVar[str] = "notification.sent"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    description: ClassVar[str] = "The provider accepted the message."


class NotificationDelivered(NotificationOutcome):
    event_type: ClassVar[str] = "notification.delivered"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    description: ClassVar[str] = "The provider reported the message delivered."


class NotificationFailed(NotificationOutcome):
    event_type: ClassVar[str] = "notification.failed"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    description: ClassVar[str] = (
        "The message could not be sent; `reason` says why and whether it was permanent. With `outcome_unknown` "
        "it may have been sent: the provider may have taken it (a timeout, a lost connection or a 5xx after the "
        "request went out, a crash during the call); it is not retried, and contact caps count it as an attempt."
    )

    permanent: bool = True
    outcome_unknown: bool = Field(
        default=False,
        description="The provider may have taken the message, so it may have reached the debtor: not retried, "
        "and counted as a contact attempt (Reg F counts attempts)",
    )


class NotificationBounced(NotificationOutcome):
    event_type: ClassVar[str] = "notification.bounced"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    description: ClassVar[str] = "The message bounced (hard or soft) after being accepted."

    hard: bool = True


class NotificationSkipped(NotificationOutcome):
    event_type: ClassVar[str] = "notification.skipped"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    description: ClassVar[str] = "The step was not sent on this channel (e.g. all invoices already settled)."


class NotificationHeld(NotificationOutcome):
    event_type: ClassVar[str] = "notification.held"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    description: ClassVar[str] = (
        "The notifier reached the delivery outside the step's contact window and did not hand it to a provider; "
        "it waits, unsent, for the policy engine's dunning.step.replanned."
    )

    held_at: AwareDatetime = Field(description="When the notifier reached the delivery")
    deliver_from: AwareDatetime | None = None
    deliver_until: AwareDatetime | None = None


class ConsentRevoked(EventData):
    event_type: ClassVar[str] = "consent.revoked"
    topic: ClassVar[str] = topics.NOTIFICATIONS
    subject_field: ClassVar[str] = "customer_id"
    description: ClassVar[str] = "A customer opted out of a channel (STOP reply, unsubscribe, hard bounce, complaint)."

    channel: Channel
    address: str | None = None
    reason: Literal["stop_reply", "unsubscribe", "hard_bounce", "complaint", "manual"]


# ---------------------------------------------------------------- collector tasks (notifier)

TaskOutcome = Literal["done", "reached", "not_reached", "promise_made", "dispute_raised", "not_needed"]


class _TaskEvent(EventData):
    topic: ClassVar[str] = topics.NOTIFICATIONS
    subject_field: ClassVar[str] = "task_id"

    task_id: str
    step_id: str = Field(description="The dunning step the task was made for (dunning.step.due's step_id)")
    invoice_ids: list[str] = Field(description="The invoices the task is about")
    by: str | None = Field(default=None, description="The name of the person who acted, when known")


class DunningTaskAssigned(_TaskEvent):
    event_type: ClassVar[str] = "dunning.task.assigned"
    description: ClassVar[str] = "A collector task was given to a person (or taken back: assignee null)."

    assignee_sub: str | None = Field(description="The person's subject at the identity provider; null: unassigned")
    assignee_name: str | None


class DunningTaskSnoozed(_TaskEvent):
    event_type: ClassVar[str] = "dunning.task.snoozed"
    description: ClassVar[str] = "A collector task was put aside until `until` (the worklist hides it until then)."

    until: AwareDatetime


class DunningTaskCompleted(_TaskEvent):
    event_type: ClassVar[str] = "dunning.task.completed"
    description: ClassVar[str] = "A collector finished a task, with its outcome."

    outcome: TaskOutcome
    note: str | None = Field(default=None, description="What the collector did or agreed (free text)")


# ---------------------------------------------------------------- promises (promise-tracker)

RecordedBy = Literal["collector", "customer", "inbound_reply"]


class PromiseCreated(EventData):
    event_type: ClassVar[str] = "promise.created"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "promise_id"
    description: ClassVar[str] = "A promise-to-pay was recorded; dunning on its invoices pauses until it ends."

    promise_id: str
    invoice_ids: list[str]
    currency: str
    amount: DecimalStr
    promised_date: date
    deadline: AwareDatetime = Field(description="End of the promised day in the customer's zone plus grace")
    recorded_by: RecordedBy
    plan_id: str | None = None
    note: str | None = None


class PromiseKept(EventData):
    event_type: ClassVar[str] = "promise.kept"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "promise_id"
    description: ClassVar[str] = "Payments and credits after the promise reached the promised amount in time."

    promise_id: str
    invoice_ids: list[str]
    currency: str
    amount: DecimalStr
    received: DecimalStr
    plan_id: str | None = None


class PromiseBroken(EventData):
    event_type: ClassVar[str] = "promise.broken"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "promise_id"
    description: ClassVar[str] = "The deadline passed short of the promised amount; dunning re-escalates."

    promise_id: str
    invoice_ids: list[str]
    currency: str
    amount: DecimalStr
    received: DecimalStr
    shortfall: DecimalStr
    partially_kept: bool = Field(description="Something arrived, but less than promised")
    deadline: AwareDatetime
    broken_promise_count: int = Field(ge=1, description="Broken promises of this customer so far")
    plan_id: str | None = None


class PromiseCancelled(EventData):
    event_type: ClassVar[str] = "promise.cancelled"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "promise_id"
    description: ClassVar[str] = "A promise was withdrawn before its deadline; dunning resumes where it was."

    promise_id: str
    invoice_ids: list[str]
    reason: str | None = None
    plan_id: str | None = None


class Instalment(_Part):
    promise_id: str
    due_date: date
    amount: DecimalStr


class PlanCreated(EventData):
    event_type: ClassVar[str] = "plan.created"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "plan_id"
    description: ClassVar[str] = "A payment plan split a balance into instalments, each tracked as a promise."

    plan_id: str
    invoice_ids: list[str]
    currency: str
    total: DecimalStr
    instalments: list[Instalment]


class PlanDefaulted(EventData):
    event_type: ClassVar[str] = "plan.defaulted"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "plan_id"
    description: ClassVar[str] = "A payment plan broke (missed instalment as the policy configures)."

    plan_id: str
    invoice_ids: list[str]
    reason: str
    strikes: int = 0


class PlanCompleted(EventData):
    event_type: ClassVar[str] = "plan.completed"
    topic: ClassVar[str] = topics.PROMISES
    subject_field: ClassVar[str] = "plan_id"
    description: ClassVar[str] = "Every instalment of a payment plan was kept."

    plan_id: str
    invoice_ids: list[str]


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type: cls
    for cls in (
        CustomerUpserted, InvoiceCreated, InvoiceUpdated, InvoiceVoided, PaymentApplied, PaymentReversed,
        CreditNoteApplied, DisputeOpened, DisputeResolved, LedgerSynced, CustomerErased,
        DunningStepDue, DunningStepCancelled, DunningStepReplanned, DunningStepHeld, DunningCallLogged,
        DunningHandOffCompleted,
        NotificationSent, NotificationDelivered, NotificationFailed, NotificationBounced,
        NotificationSkipped, NotificationHeld, ConsentRevoked, DunningTaskAssigned, DunningTaskSnoozed, DunningTaskCompleted,
        PromiseCreated, PromiseKept, PromiseBroken, PromiseCancelled, PlanCreated, PlanDefaulted,
        PlanCompleted,
    )
}  # fmt: skip

# Settlements: published and applied ahead of bulk work (see EventData.priority).
PRIORITY_TYPES: frozenset[str] = frozenset(t for t, cls in EVENT_TYPES.items() if cls.priority)
# The topics that carry them: only their consumers need a priority lane.
PRIORITY_TOPICS: frozenset[str] = frozenset(cls.topic for cls in EVENT_TYPES.values() if cls.priority)
