"""Closing and reopening by typed reason (domain.closure), and the deterministic step id (domain.step_ids)."""

from __future__ import annotations

import uuid

import pytest

from policy_engine.domain.closure import ClosureReason, Reopening, reopens, settled_by, voided_as
from policy_engine.domain.step_ids import STEP_NAMESPACE, step_id

REOPENED_BY = {
    Reopening.INVOICE_OPEN_AGAIN: {ClosureReason.PAID},
    Reopening.PAYMENT_REVERSED: {ClosureReason.PAID, ClosureReason.CREDITED},
}


@pytest.mark.parametrize("closure", list(ClosureReason))
@pytest.mark.parametrize("by", list(Reopening))
def test_only_an_undone_settlement_reopens_a_closed_case(closure: ClosureReason, by: Reopening) -> None:
    # A void, a write-off, a hand-off to collections and an erasure are final; a snapshot saying "open" again
    # undoes a payment, a reversal undoes a payment or a credit note.
    assert reopens(closure, by) is (closure in REOPENED_BY[by])


def test_a_case_that_is_not_closed_has_nothing_to_reopen() -> None:
    assert not any(reopens(None, by) for by in Reopening)


def test_the_ledger_status_after_a_fact_decides_the_closure() -> None:
    assert settled_by("open", 5_00) is None
    assert settled_by("paid", 0) is ClosureReason.PAID
    assert settled_by("open", 0) is ClosureReason.PAID  # a zero balance is settled whatever the status says
    assert settled_by("paid", 0, credit_note=True) is ClosureReason.CREDITED
    assert settled_by("void", 5_00) is ClosureReason.VOIDED
    assert settled_by("written_off", 5_00, credit_note=True) is ClosureReason.WRITTEN_OFF
    assert [voided_as(s) for s in ("void", "written_off", "paid")] == [
        ClosureReason.VOIDED, ClosureReason.WRITTEN_OFF, ClosureReason.PAID,
    ]  # fmt: skip


def test_the_step_id_is_uuid5_of_the_step_and_its_invoices_in_any_order() -> None:
    key = "acme|C-1|default|follow_up_1|EUR|INV-1|INV-2"
    assert step_id("acme", "C-1", "default", "follow_up_1", "EUR", ["INV-2", "INV-1"]) == str(
        uuid.uuid5(STEP_NAMESPACE, key)
    )
    assert step_id("acme", "C-1", "default", "follow_up_1", "EUR", ["INV-1"]) != step_id(
        "acme", "C-1", "default", "follow_up_1", "USD", ["INV-1"]
    )
