"""Signing in and out, and the development identity provider's pages."""

TEXTS: dict[str, dict[str, str]] = {
    "sign_in.failed.title": {"en": "Sign-in did not work", "de": "Anmeldung fehlgeschlagen"},
    "sign_in.failed.state": {
        "en": "This sign-in was not started in this browser, or it was completed already. Nobody was signed in; "
        "start again.",
        "de": "Diese Anmeldung wurde nicht in diesem Browser begonnen oder ist schon abgeschlossen. Niemand wurde "
        "angemeldet; beginnen Sie erneut.",
    },
    "sign_in.failed.expired": {
        "en": "The sign-in took longer than ten minutes. Nobody was signed in; start again.",
        "de": "Die Anmeldung hat länger als zehn Minuten gedauert. Niemand wurde angemeldet; beginnen Sie erneut.",
    },
    "sign_in.failed.provider": {
        "en": "The identity provider refused the sign-in ({error}). Nobody was signed in.",
        "de": "Der Identitätsanbieter hat die Anmeldung abgelehnt ({error}). Niemand wurde angemeldet.",
    },
    "sign_in.failed.token": {
        "en": "The identity provider's answer could not be verified ({problem}). Nobody was signed in.",
        "de": "Die Antwort des Identitätsanbieters ließ sich nicht prüfen ({problem}). Niemand wurde angemeldet.",
    },
    "sign_in.failed.unreachable": {
        "en": "The identity provider at {issuer} could not be reached or did not answer as one. Try again in a "
        "moment; if it persists, tell your administrator.",
        "de": "Der Identitätsanbieter unter {issuer} war nicht erreichbar oder antwortete nicht wie einer. "
        "Versuchen Sie es gleich noch einmal; bleibt es so, wenden Sie sich an Ihre Administration.",
    },
    "sign_in.refused.title": {"en": "No access to the workspace", "de": "Kein Zugang zum Arbeitsplatz"},
    "sign_in.refused.no_role": {
        "en": "{name} has no role in the workspace: the identity provider's claim '{claim}' names none of "
        "viewer, collector, manager, admin, and the role table (WORKSPACE_ROLE_MAP) has no entry for this "
        "address. Ask your administrator for a role.",
        "de": "{name} hat keine Rolle im Arbeitsplatz: Das Merkmal '{claim}' des Identitätsanbieters nennt keine "
        "der Rollen viewer, collector, manager, admin, und die Rollentabelle (WORKSPACE_ROLE_MAP) hat keinen "
        "Eintrag für diese Adresse. Bitten Sie Ihre Administration um eine Rolle.",
    },
    "sign_in.refused.no_tenant": {
        "en": "{name} works for no tenant: the identity provider's claim '{claim}' is missing and no default "
        "tenant is set (WORKSPACE_DEFAULT_TENANT). Ask your administrator.",
        "de": "{name} ist keinem Mandanten zugeordnet: Das Merkmal '{claim}' des Identitätsanbieters fehlt, und "
        "kein Standardmandant ist eingestellt (WORKSPACE_DEFAULT_TENANT). Wenden Sie sich an Ihre Administration.",
    },
    "sign_in.refused.unknown_tenant": {
        "en": "{name} works for tenant '{tenant}', which this workspace does not serve (no entry in "
        "WORKSPACE_API_KEYS). Ask your administrator.",
        "de": "{name} arbeitet für den Mandanten '{tenant}', den dieser Arbeitsplatz nicht bedient (kein Eintrag in "
        "WORKSPACE_API_KEYS). Wenden Sie sich an Ihre Administration.",
    },
    "sign_in.again": {"en": "Sign in again", "de": "Erneut anmelden"},
    "signed_out.title": {"en": "Signed out", "de": "Abgemeldet"},
    "signed_out.text": {
        "en": "You are signed out of the workspace.",
        "de": "Sie sind vom Arbeitsplatz abgemeldet.",
    },
    "idp.title": {"en": "Development sign-in", "de": "Entwicklungs-Anmeldung"},
    "idp.notice": {
        "en": "A development identity provider: never use it in production. The seeded people are printed by make up.",
        "de": "Ein Identitätsanbieter nur für die Entwicklung: niemals produktiv verwenden. Die angelegten Personen "
        "zeigt make up an.",
    },
    "idp.signing_in_to": {"en": "Signing in to {client}", "de": "Anmeldung bei {client}"},
    "idp.username": {"en": "Username", "de": "Benutzername"},
    "idp.password": {"en": "Password", "de": "Passwort"},
    "idp.submit": {"en": "Sign in", "de": "Anmelden"},
    "idp.error.username": {"en": "Enter your username.", "de": "Geben Sie Ihren Benutzernamen ein."},
    "idp.error.unknown": {
        "en": "Username or password is wrong.",
        "de": "Benutzername oder Passwort ist falsch.",
    },
    "idp.error.password": {"en": "Enter your password.", "de": "Geben Sie Ihr Passwort ein."},
    "idp.error.title": {"en": "Sign-in request refused", "de": "Anmeldeanfrage abgelehnt"},
    "idp.error.client": {
        "en": "This request names an unknown client_id or a redirect_uri the client did not register.",
        "de": "Diese Anfrage nennt eine unbekannte client_id oder eine nicht registrierte redirect_uri.",
    },
    "idp.signed_out": {
        "en": "You are signed out of the development identity provider.",
        "de": "Sie sind vom Entwicklungs-Identitätsanbieter abgemeldet.",
    },
}
