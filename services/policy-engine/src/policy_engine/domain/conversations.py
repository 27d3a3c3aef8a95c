"""Reg F's 7-day rule (12 CFR 1006.14(b)(2)(ii)): after a telephone conversation with the debtor about a debt, no
call about that debt for seven days. Pure: which call outcomes are conversations, and until when a call is held."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, get_args

CallOutcome = Literal["conversation", "no_answer", "voicemail", "wrong_number", "refused_to_talk"]
CALL_OUTCOMES: tuple[str, ...] = get_args(CallOutcome)

# The channels that are calls: the engine's automated voice step. A collector task is work for a person (it may be a
# letter to check or a hand-off), not a call: it is not held, and the conversation stands on the case's timeline.
CALL_CHANNELS = frozenset({"voice"})

NO_CALL_DAYS = 7
REGULATION = "12 CFR 1006.14(b)(2)(ii)"


def no_call_until(outcome: str, at: datetime) -> datetime | None:
    """The first instant a call about the debt may be made again after this call, or None when it holds nothing.

    The CFPB counts the day of the conversation as the first of the seven; seven whole days from the conversation's
    instant is never earlier than that, in any time zone (stricter by less than a day)."""
    return at + timedelta(days=NO_CALL_DAYS) if outcome == "conversation" else None


def hold_reason(channel: str, conversation_at: datetime, until: datetime) -> str:
    """The sentence the timeline and dunning.step.held show for a call held by a conversation."""
    return (
        f"{channel}: a conversation with the debtor about this debt on {conversation_at.date().isoformat()}; no call "
        f"until {until.isoformat()} ({REGULATION})"
    )
