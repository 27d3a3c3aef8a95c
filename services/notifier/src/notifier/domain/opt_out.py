"""Words that revoke consent in an SMS reply (TCPA: any reasonable means; carriers' standard keywords)."""

from __future__ import annotations

import re

STOP_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "opt out",
        "optout",
        "opt-out",
        "remove",
        "stopp",
        "abmelden",
        "abbestellen",
        "ende",
    }
)
START_WORDS = frozenset({"start", "unstop", "yes"})


def _normalise(body: str) -> str:
    return re.sub(r"[^a-zäöüß ]", "", " ".join(body.lower().split())).strip()


def is_stop_request(body: str) -> bool:
    """A reply that is a stop word on its own, or starts with one ("STOP please", "Stop texting me")."""
    text = _normalise(body)
    if text in STOP_WORDS:
        return True
    first_two = " ".join(text.split()[:2])
    first = text.split()[0] if text else ""
    return first in STOP_WORDS or first_two in STOP_WORDS
