"""A one-off reminder now, on the case."""

TEXTS: dict[str, dict[str, str]] = {
    "remind.title": {"en": "Send a reminder now", "de": "Jetzt eine Erinnerung senden"},
    "remind.hint": {
        "en": "Goes out at once if the contact rules allow it (pauses, contact hours, consent, contact limits). "
        "No invoice ticked: every open invoice that is not paused.",
        "de": "Geht sofort hinaus, wenn die Kontaktregeln es erlauben (Pausen, Kontaktzeiten, Einwilligung, "
        "Kontaktgrenzen). Keine Rechnung angekreuzt: alle offenen Rechnungen, die nicht pausiert sind.",
    },
    "remind.channel": {"en": "Channel", "de": "Kanal"},
    "remind.channel.step": {"en": "As the current step", "de": "Wie der aktuelle Schritt"},
    "remind.channel.email": {"en": "Email", "de": "E-Mail"},
    "remind.channel.sms": {"en": "SMS", "de": "SMS"},
    "remind.channel.letter": {"en": "Letter", "de": "Brief"},
    "remind.invoices": {"en": "About these invoices", "de": "Zu diesen Rechnungen"},
    "remind.submit": {"en": "Send the reminder", "de": "Erinnerung senden"},
    "remind.done": {
        "en": "A reminder went out by {channel} about {count} invoice(s).",
        "de": "Eine Erinnerung ging per {channel} zu {count} Rechnung(en) hinaus.",
    },
    "remind.refused": {"en": "Not sent now: {reason}.", "de": "Jetzt nicht gesendet: {reason}."},
    "remind.possible_from": {"en": "Possible from {at}.", "de": "Möglich ab {at}."},
}
