"""The frame every page shares: navigation, sign-out, language, refusals."""

TEXTS: dict[str, dict[str, str]] = {
    "app.name": {"en": "Dunning workspace", "de": "Mahnwesen-Arbeitsplatz"},
    "nav.skip": {"en": "Skip to content", "de": "Zum Inhalt springen"},
    "nav.label": {"en": "Main", "de": "Hauptnavigation"},
    "nav.dashboard": {"en": "Dashboard", "de": "Übersicht"},
    "nav.signed_in_as": {"en": "Signed in as {name} ({role})", "de": "Angemeldet als {name} ({role})"},
    "nav.sign_out": {"en": "Sign out", "de": "Abmelden"},
    "nav.language": {"en": "Deutsch", "de": "English"},
    "role.viewer": {"en": "viewer", "de": "Betrachter"},
    "role.collector": {"en": "collector", "de": "Sachbearbeiter"},
    "role.manager": {"en": "manager", "de": "Leitung"},
    "role.admin": {"en": "admin", "de": "Administrator"},
    "forbidden.title": {"en": "Not allowed", "de": "Nicht erlaubt"},
    "forbidden.text": {
        "en": "Your role ({role}) may not do this; it needs the role {needed}. Nothing was changed.",
        "de": "Ihre Rolle ({role}) darf das nicht; dafür ist die Rolle {needed} nötig. Es wurde nichts geändert.",
    },
    "csrf.title": {"en": "Form expired", "de": "Formular abgelaufen"},
    "csrf.text": {
        "en": "This form was not sent from a current page of your session. Nothing was changed; "
        "open the page again and repeat.",
        "de": "Dieses Formular stammt nicht von einer aktuellen Seite Ihrer Sitzung. Es wurde nichts geändert; "
        "öffnen Sie die Seite erneut und wiederholen Sie den Vorgang.",
    },
    "unavailable.title": {"en": "Not available just now", "de": "Gerade nicht verfügbar"},
    "unavailable.text": {
        "en": "This part could not be loaded ({service} did not answer). The rest of the page is current.",
        "de": "Dieser Teil konnte nicht geladen werden ({service} antwortete nicht). Der Rest der Seite ist aktuell.",
    },
    "notfound.title": {"en": "Not found", "de": "Nicht gefunden"},
    "notfound.text": {"en": "There is nothing at this address.", "de": "Unter dieser Adresse gibt es nichts."},
    "back.home": {"en": "Back to the dashboard", "de": "Zurück zur Übersicht"},
    "home.title": {"en": "Dashboard", "de": "Übersicht"},
    "home.welcome": {"en": "Welcome, {name}.", "de": "Willkommen, {name}."},
}
