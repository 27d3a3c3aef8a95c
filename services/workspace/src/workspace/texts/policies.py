"""The policy pages: list, editor, preview, publish."""

TEXTS: dict[str, dict[str, str]] = {
    "nav.policies": {"en": "Policies", "de": "Richtlinien"},
    "policies.title": {"en": "Dunning policies", "de": "Mahnrichtlinien"},
    "policies.intro": {
        "en": "The policies in force, in the order they are tried. Open one to read it; managers can change it.",
        "de": "Die gültigen Richtlinien in der Reihenfolge, in der sie geprüft werden. Öffnen Sie eine, um sie zu "
        "lesen; die Leitung kann sie ändern.",
    },
    "policies.col.policy": {"en": "Policy", "de": "Richtlinie"},
    "policies.col.version": {"en": "Version", "de": "Version"},
    "policies.col.steps": {"en": "Steps", "de": "Stufen"},
    "policies.col.priority": {"en": "Priority", "de": "Priorität"},
    "policy.unknown": {"en": "No such policy.", "de": "Diese Richtlinie gibt es nicht."},
    "policy.title": {"en": "Policy {name}", "de": "Richtlinie {name}"},
    "policy.in_force": {"en": "Version {version} is in force.", "de": "Version {version} ist gültig."},
    "policy.published": {
        "en": "Version {version} was published and is now in force.",
        "de": "Version {version} wurde veröffentlicht und ist jetzt gültig.",
    },
    "policy.editor": {"en": "Draft (YAML)", "de": "Entwurf (YAML)"},
    "policy.editor_help": {
        "en": "Edit the policy. Nothing changes until you preview the draft and publish it.",
        "de": "Bearbeiten Sie die Richtlinie. Nichts ändert sich, bevor Sie den Entwurf prüfen und veröffentlichen.",
    },
    "policy.read_only": {
        "en": "Only a manager can change a policy.",
        "de": "Nur die Leitung kann eine Richtlinie ändern.",
    },
    "policy.days": {"en": "Preview the next", "de": "Vorschau der nächsten"},
    "policy.days_unit": {"en": "{days} days", "de": "{days} Tage"},
    "policy.preview": {"en": "Preview the draft", "de": "Entwurf prüfen"},
    "policy.errors": {
        "en": "The draft has {count} problem(s). Nothing was changed.",
        "de": "Der Entwurf hat {count} Fehler. Es wurde nichts geändert.",
    },
    "policy.error_at": {"en": "Line {line}: {field}: {reason}", "de": "Zeile {line}: {field}: {reason}"},
    "policy.error": {"en": "{field}: {reason}", "de": "{field}: {reason}"},
    "policy.versions": {"en": "Versions", "de": "Versionen"},
    "policy.col.created": {"en": "Published", "de": "Veröffentlicht"},
    "policy.col.retired": {"en": "Replaced", "de": "Ersetzt"},
    "policy.builtin": {"en": "built in", "de": "eingebaut"},
    "policy.preview_first": {
        "en": "The draft changed after its preview: preview it again before publishing.",
        "de": "Der Entwurf wurde nach der Vorschau geändert: prüfen Sie ihn erneut, bevor Sie ihn veröffentlichen.",
    },
    "preview.title": {"en": "Preview of the draft of {policy}", "de": "Vorschau des Entwurfs von {policy}"},
    "preview.window": {
        "en": "What would be sent from {start} to {end}, with the version in force and with the draft (version {version}).",
        "de": "Was vom {start} bis {end} versendet würde, mit der gültigen Version und mit dem Entwurf (Version {version}).",
    },
    "preview.totals": {
        "en": "Messages: {now} now, {draft} with the draft.",
        "de": "Nachrichten: {now} jetzt, {draft} mit dem Entwurf.",
    },
    "preview.truncated": {
        "en": "Only part of the portfolio was simulated (the policy engine's limit); the counts are a lower bound.",
        "de": "Nur ein Teil des Bestands wurde simuliert (Grenze der Richtlinien-Engine); die Zahlen sind Mindestwerte.",
    },
    "preview.per_day": {"en": "Messages per day and channel", "de": "Nachrichten pro Tag und Kanal"},
    "preview.col.day": {"en": "Day", "de": "Tag"},
    "preview.col.channel": {"en": "Channel", "de": "Kanal"},
    "preview.col.now": {"en": "Now", "de": "Jetzt"},
    "preview.col.draft": {"en": "With the draft", "de": "Mit Entwurf"},
    "preview.col.change": {"en": "Change", "de": "Änderung"},
    "preview.nothing": {
        "en": "Nothing would be sent in this window, with either version.",
        "de": "In diesem Zeitraum würde mit keiner der Versionen etwas versendet.",
    },
    "preview.added": {"en": "Contacted only with the draft", "de": "Nur mit dem Entwurf kontaktiert"},
    "preview.dropped": {"en": "No longer contacted", "de": "Nicht mehr kontaktiert"},
    "preview.changed": {"en": "Contacted differently", "de": "Anders kontaktiert"},
    "preview.none": {"en": "nobody", "de": "niemand"},
    "preview.diff": {"en": "Changes against version {version}", "de": "Änderungen gegenüber Version {version}"},
    "preview.diff_new": {"en": "A new policy", "de": "Eine neue Richtlinie"},
    "preview.diff.added": {"en": "added", "de": "hinzugefügt"},
    "preview.diff.removed": {"en": "removed", "de": "entfernt"},
    "preview.diff.skipped": {"en": "… {count} unchanged lines …", "de": "… {count} unveränderte Zeilen …"},
    "preview.publish": {"en": "Publish as version {version}", "de": "Als Version {version} veröffentlichen"},
    "preview.back": {"en": "Back to the editor", "de": "Zurück zum Editor"},
}

# The same draft as a form (policy_form.html).
TEXTS |= {
    "pform.title": {"en": "Policy {name} as a form", "de": "Richtlinie {name} als Formular"},
    "pform.intro": {
        "en": "The fields changed most often. Everything else of the policy stays as it is. Nothing changes until "
        "you preview the draft and publish it.",
        "de": "Die am häufigsten geänderten Felder. Alles andere der Richtlinie bleibt, wie es ist. Nichts ändert "
        "sich, bevor Sie den Entwurf prüfen und veröffentlichen.",
    },
    "pform.open": {"en": "Edit as a form", "de": "Als Formular bearbeiten"},
    "pform.open_draft": {"en": "Edit this draft as a form", "de": "Diesen Entwurf als Formular bearbeiten"},
    "pform.back": {"en": "Back to the form", "de": "Zurück zum Formular"},
    "pform.to_yaml": {"en": "Edit this draft as YAML", "de": "Diesen Entwurf als YAML bearbeiten"},
    "pform.elsewhere": {
        "en": "{field}: {reason} (not in this form: edit it as YAML)",
        "de": "{field}: {reason} (nicht in diesem Formular: als YAML bearbeiten)",
    },
    "pform.policy": {"en": "The policy", "de": "Die Richtlinie"},
    "pform.name": {"en": "Name", "de": "Name"},
    "pform.time_zone": {"en": "Time zone", "de": "Zeitzone"},
    "pform.time_zone_hint": {
        "en": "“customer” (the debtor's own) or a zone such as Europe/Berlin",
        "de": "„customer“ (die des Schuldners) oder eine Zone wie Europe/Berlin",
    },
    "pform.send_time": {"en": "Send time", "de": "Versandzeit"},
    "pform.quiet_start": {"en": "Contact from", "de": "Kontakt ab"},
    "pform.quiet_end": {"en": "Contact until", "de": "Kontakt bis"},
    "pform.steps": {"en": "Steps, in order", "de": "Stufen, der Reihe nach"},
    "pform.step": {"en": "Step {number}", "de": "Stufe {number}"},
    "pform.step_name": {"en": "Name", "de": "Name"},
    "pform.offset_days": {"en": "Days after the due date", "de": "Tage nach Fälligkeit"},
    "pform.offset_hint": {"en": "negative: before it", "de": "negativ: davor"},
    "pform.template": {"en": "Template", "de": "Vorlage"},
    "pform.tone": {"en": "Tone", "de": "Ton"},
    "pform.channels": {"en": "Channels", "de": "Kanäle"},
    "pform.actions": {"en": "Actions", "de": "Aktionen"},
    "pform.remove_step": {"en": "Remove step {number}", "de": "Stufe {number} entfernen"},
    "pform.add_step": {"en": "Add a step", "de": "Stufe hinzufügen"},
    "pform.caps": {"en": "Contact caps", "de": "Kontaktgrenzen"},
    "pform.caps_hint": {
        "en": "At most so many attempts on a channel in so many days, per debt or per debtor.",
        "de": "Höchstens so viele Versuche auf einem Kanal in so vielen Tagen, je Forderung oder je Schuldner.",
    },
    "pform.cap": {"en": "Cap {number}", "de": "Grenze {number}"},
    "pform.cap_channel": {"en": "Channel", "de": "Kanal"},
    "pform.max_attempts": {"en": "At most (attempts)", "de": "Höchstens (Versuche)"},
    "pform.per_days": {"en": "In (days)", "de": "In (Tagen)"},
    "pform.per": {"en": "Per", "de": "Je"},
    "pform.remove_cap": {"en": "Remove cap {number}", "de": "Grenze {number} entfernen"},
    "pform.add_cap": {"en": "Add a cap", "de": "Grenze hinzufügen"},
}

# What the page script (static/workspace.js) says: the texts are in the page, the script only shows them.
TEXTS |= {
    "policy.check_ok": {
        "en": "No problems found so far (the preview checks it against the portfolio).",
        "de": "Bisher keine Fehler gefunden (die Vorschau prüft ihn gegen den Bestand).",
    },
    "policy.confirm_publish": {
        "en": "Publish this draft as version {version}? It is in force at once.",
        "de": "Diesen Entwurf als Version {version} veröffentlichen? Er gilt sofort.",
    },
    "ops.confirm_replay_all": {
        "en": "Send all {count} waiting dead letter(s) of {group} back to their topic?",
        "de": "Alle {count} wartenden unzustellbaren Ereignisse von {group} an ihr Topic zurücksenden?",
    },
}
