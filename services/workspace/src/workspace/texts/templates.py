"""The message template pages."""

TEXTS: dict[str, dict[str, str]] = {
    "nav.templates": {"en": "Templates", "de": "Vorlagen"},
    "templates.title": {"en": "Message templates", "de": "Nachrichtenvorlagen"},
    "templates.col.template": {"en": "Template", "de": "Vorlage"},
    "templates.col.locales": {"en": "Languages", "de": "Sprachen"},
    "templates.own": {"en": "own", "de": "eigene"},
    "templates.shipped": {"en": "shipped", "de": "mitgeliefert"},
    "template.title": {"en": "Template {id}", "de": "Vorlage {id}"},
    "template.saved": {
        "en": "Saved. Reminders from now on use it.",
        "de": "Gespeichert. Neue Erinnerungen nutzen sie.",
    },
    "template.locale": {"en": "Language being edited", "de": "Bearbeitete Sprache"},
    "template.customer": {
        "en": "Preview with a customer's open invoices (customer id; empty: a sample)",
        "de": "Vorschau mit offenen Rechnungen eines Kunden (Kundennummer; leer: ein Beispiel)",
    },
    "template.part.subject": {"en": "Subject", "de": "Betreff"},
    "template.part.text": {"en": "Text (plain-text email and letter)", "de": "Text (E-Mail als Text und Brief)"},
    "template.part.html": {"en": "HTML email (optional)", "de": "HTML-E-Mail (optional)"},
    "template.part.sms": {"en": "SMS (optional)", "de": "SMS (optional)"},
    "template.part.voice": {"en": "Voice call script (optional)", "de": "Sprachanruf-Text (optional)"},
    "template.errors": {
        "en": "The template has {count} problem(s). Nothing was saved.",
        "de": "Die Vorlage hat {count} Fehler. Es wurde nichts gespeichert.",
    },
    "template.preview": {"en": "Preview", "de": "Vorschau"},
    "template.save": {"en": "Save this language's version", "de": "Diese Sprachversion speichern"},
    "template.read_only": {
        "en": "Only a manager can save a template; you can preview.",
        "de": "Nur die Leitung kann Vorlagen speichern; eine Vorschau ist möglich.",
    },
    "template.previews": {"en": "How it reads in every language", "de": "So liest sie sich in jeder Sprache"},
    "template.rendered": {"en": "{locale} ({origin})", "de": "{locale} ({origin})"},
    "template.draft": {"en": "your draft", "de": "Ihr Entwurf"},
    "template.not_rendered": {"en": "Could not be rendered: {reason}", "de": "Konnte nicht erzeugt werden: {reason}"},
    "template.html_frame": {"en": "HTML email in {locale}", "de": "HTML-E-Mail auf {locale}"},
}
