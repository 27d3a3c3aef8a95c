"""The templates the notifier ships: one per step tone of the default policy, in English and German.

Each is assembled from a tone's wording plus shared partials (invoice table, links, signature, HTML
layout), which tenant templates may `{% include %}` / `{% extends %}` too. A tenant's own template with the
same id and locale replaces the shipped one.
"""

from __future__ import annotations

from notifier.domain.rendering import TemplateSource

LANGUAGES = ("en", "de")

PARTIALS: dict[str, str] = {
    # ------------------------------------------------------------ plain text
    "invoices.en.txt": """\
{% for inv in invoices %}
  Invoice {{ inv.number }}   due {{ inv.due_date }}   {{ inv.balance }}{% if inv.partially_paid %} (of {{ inv.total }}, part paid){% endif %}

{% endfor %}
{% for fee in fees %}
  {{ fee.description }}   {{ fee.amount }}
{% endfor %}
  Total due: {{ total_with_fees }}""",
    "invoices.de.txt": """\
{% for inv in invoices %}
  Rechnung {{ inv.number }}   fällig {{ inv.due_date }}   {{ inv.balance }}{% if inv.partially_paid %} (von {{ inv.total }}, teilweise bezahlt){% endif %}

{% endfor %}
{% for fee in fees %}
  {{ fee.description }}   {{ fee.amount }}
{% endfor %}
  Offener Gesamtbetrag: {{ total_with_fees }}""",
    "links.en.txt": """\
Pay now: {{ pay_url }}
Cannot pay in full today? Tell us when you will: {{ promise_url }}""",
    "links.de.txt": """\
Jetzt bezahlen: {{ pay_url }}
Sie können heute nicht vollständig zahlen? Nennen Sie uns einen Zahlungstermin: {{ promise_url }}""",
    "signature.en.txt": """\
Kind regards,
{{ company.sender_name }}
{{ company.company_name }}
{% for line in company.address_lines %}
{{ line }}
{% endfor %}
{% if unsubscribe_url %}

To stop receiving these emails: {{ unsubscribe_url }}
{% endif %}""",
    "signature.de.txt": """\
Mit freundlichen Grüßen
{{ company.sender_name }}
{{ company.company_name }}
{% for line in company.address_lines %}
{{ line }}
{% endfor %}
{% if unsubscribe_url %}

Keine weiteren E-Mails dieser Art erhalten: {{ unsubscribe_url }}
{% endif %}""",
    # ------------------------------------------------------------ HTML
    "invoices.en.html": """\
<table role="table" cellpadding="6" cellspacing="0" style="border-collapse:collapse;width:100%;font-size:14px">
<thead><tr style="background:{{ company.accent_color }}"><th align="left">Invoice</th><th align="left">Due date</th><th align="right">Open balance</th></tr></thead>
<tbody>
{% for inv in invoices %}
<tr style="border-top:1px solid #ddd"><td>{{ inv.number }}</td><td>{{ inv.due_date }}</td><td align="right">{{ inv.balance }}{% if inv.partially_paid %}<br><small>of {{ inv.total }}, part paid</small>{% endif %}</td></tr>
{% endfor %}
{% for fee in fees %}
<tr style="border-top:1px solid #ddd"><td colspan="2">{{ fee.description }}</td><td align="right">{{ fee.amount }}</td></tr>
{% endfor %}
</tbody>
<tfoot><tr style="border-top:2px solid #333"><td colspan="2"><strong>Total due</strong></td><td align="right"><strong>{{ total_with_fees }}</strong></td></tr></tfoot>
</table>""",
    "invoices.de.html": """\
<table role="table" cellpadding="6" cellspacing="0" style="border-collapse:collapse;width:100%;font-size:14px">
<thead><tr style="background:{{ company.accent_color }}"><th align="left">Rechnung</th><th align="left">Fällig am</th><th align="right">Offener Betrag</th></tr></thead>
<tbody>
{% for inv in invoices %}
<tr style="border-top:1px solid #ddd"><td>{{ inv.number }}</td><td>{{ inv.due_date }}</td><td align="right">{{ inv.balance }}{% if inv.partially_paid %}<br><small>von {{ inv.total }}, teilweise bezahlt</small>{% endif %}</td></tr>
{% endfor %}
{% for fee in fees %}
<tr style="border-top:1px solid #ddd"><td colspan="2">{{ fee.description }}</td><td align="right">{{ fee.amount }}</td></tr>
{% endfor %}
</tbody>
<tfoot><tr style="border-top:2px solid #333"><td colspan="2"><strong>Offener Gesamtbetrag</strong></td><td align="right"><strong>{{ total_with_fees }}</strong></td></tr></tfoot>
</table>""",
    "layout.html": """\
<!DOCTYPE html>
<html lang="{% block lang %}en{% endblock %}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{% block title %}{% endblock %}</title></head>
<body style="margin:0;background:{{ company.accent_color }};font-family:Arial,Helvetica,sans-serif;color:#222;line-height:1.5">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#fff;margin:24px 0;max-width:600px">
<tr><td style="background:{{ company.primary_color }};color:#fff;padding:16px 24px;font-size:20px">
{% if company.logo_url %}<img src="{{ company.logo_url }}" alt="" height="32" style="vertical-align:middle;margin-right:8px">{% endif %}{{ company.company_name }}</td></tr>
<tr><td style="padding:24px">
{% block body %}{% endblock %}
{% block table %}{% endblock %}
<p style="margin:24px 0"><a href="{{ pay_url }}" style="background:{{ company.primary_color }};color:#fff;padding:10px 18px;text-decoration:none;display:inline-block">{% block pay_label %}Pay now{% endblock %}</a>
&nbsp; <a href="{{ promise_url }}" style="color:{{ company.primary_color }}">{% block promise_label %}Promise a payment date{% endblock %}</a></p>
{% block closing %}{% endblock %}
</td></tr>
<tr><td style="padding:12px 24px;font-size:12px;color:#666;border-top:1px solid #eee">{{ company.company_name }}{% if company.address_lines %} · {{ company.address_lines|join(" · ") }}{% endif %}
{% if company.footer %}<br>{{ company.footer }}{% endif %}
{% if unsubscribe_url %}<br><a href="{{ unsubscribe_url }}" style="color:#666">{% block unsubscribe_label %}Unsubscribe from these emails{% endblock %}</a>{% endif %}
</td></tr>
</table></td></tr></table>
</body></html>""",
    "layout.en.html": """{% extends "layout.html" %}{% block table %}{% include "invoices.en.html" %}{% endblock %}""",
    "layout.de.html": """\
{% extends "layout.html" %}
{% block lang %}de{% endblock %}
{% block table %}{% include "invoices.de.html" %}{% endblock %}
{% block pay_label %}Jetzt bezahlen{% endblock %}
{% block promise_label %}Zahlungstermin zusagen{% endblock %}
{% block unsubscribe_label %}Diese E-Mails abbestellen{% endblock %}""",
}

GREETING = {"en": "Dear {{ contact_name }},", "de": "Guten Tag {{ contact_name }},"}
SIGN_OFF_HTML = {
    "en": "<p>Kind regards,<br>{{ company.sender_name }}<br>{{ company.company_name }}</p>",
    "de": "<p>Mit freundlichen Grüßen<br>{{ company.sender_name }}<br>{{ company.company_name }}</p>",
}
SMS_TAIL = {
    "en": "Pay: {{ pay_url }} Reply STOP to opt out.",
    "de": "Zahlen: {{ pay_url }} Antworten Sie STOP zum Abbestellen.",
}
VOICE_TAIL = {
    "en": "You will find a payment link and a way to promise a payment date in our email. Thank you.",
    "de": "Einen Zahlungslink und die Möglichkeit, einen Zahlungstermin zuzusagen, finden Sie in unserer E-Mail. Vielen Dank.",
}
VOICE_HELLO = {
    "en": "Hello, this is a message from {{ company.company_name }} for {{ customer.name }}.",
    "de": "Guten Tag, hier ist eine Nachricht von {{ company.company_name }} für {{ customer.name }}.",
}

_PL_EN = "{{ 'the following invoices are' if invoice_count > 1 else 'the following invoice is' }}"
_PL_DE = "{{ 'die folgenden Rechnungen sind' if invoice_count > 1 else 'die folgende Rechnung ist' }}"

# template id -> (tone, {language: (subject, opening, closing, sms lead, voice lead)})
TONES: dict[str, tuple[str, dict[str, tuple[str, str, str, str, str]]]] = {
    "pre_due_reminder": (
        "friendly",
        {
            "en": (
                "Friendly reminder: {{ total_with_fees }} due on {{ due_date }}",
                f"just a friendly heads-up: {_PL_EN} due on {{{{ due_date }}}}. If you have already arranged payment, thank you, and please ignore this message.",
                "Paying on time keeps things simple for both of us.",
                "{{ company.company_name }}: friendly reminder, {{ total_with_fees }} ({{ invoice_numbers }}) is due on {{ due_date }}.",
                "This is a friendly reminder that {{ total_with_fees }} is due on {{ due_date }}.",
            ),
            "de": (
                "Freundliche Erinnerung: {{ total_with_fees }} fällig am {{ due_date }}",
                f"wir möchten Sie freundlich daran erinnern: {_PL_DE} am {{{{ due_date }}}} fällig. Falls Sie die Zahlung bereits veranlasst haben, danken wir Ihnen und bitten Sie, diese Nachricht zu ignorieren.",
                "Vielen Dank für Ihre pünktliche Zahlung.",
                "{{ company.company_name }}: Freundliche Erinnerung, {{ total_with_fees }} ({{ invoice_numbers }}) ist am {{ due_date }} fällig.",
                "Wir erinnern freundlich daran, dass {{ total_with_fees }} am {{ due_date }} fällig sind.",
            ),
        },
    ),
    "due_date_notice": (
        "neutral",
        {
            "en": (
                "Payment due: {{ invoice_numbers }} ({{ total_with_fees }})",
                f"{_PL_EN} due for payment today.",
                "Please arrange payment at your earliest convenience. If you have already paid, thank you, and please disregard this reminder.",
                "{{ company.company_name }}: {{ total_with_fees }} ({{ invoice_numbers }}) is due today.",
                "{{ total_with_fees }} is due for payment today.",
            ),
            "de": (
                "Zahlung fällig: {{ invoice_numbers }} ({{ total_with_fees }})",
                "heute {{ 'sind die folgenden Rechnungen' if invoice_count > 1 else 'ist die folgende Rechnung' }} zur Zahlung fällig.",
                "Bitte veranlassen Sie die Zahlung zeitnah. Sollten Sie bereits gezahlt haben, danken wir Ihnen und bitten Sie, diese Erinnerung als gegenstandslos zu betrachten.",
                "{{ company.company_name }}: {{ total_with_fees }} ({{ invoice_numbers }}) sind heute fällig.",
                "Heute sind {{ total_with_fees }} zur Zahlung fällig.",
            ),
        },
    ),
    "gentle_follow_up": (
        "gentle",
        {
            "en": (
                "Reminder: {{ total_with_fees }} overdue",
                f"our records show that {_PL_EN} still open, {{{{ max_days_overdue }}}} days after the due date. Perhaps it slipped through - it happens.",
                "We would be grateful if you could settle the balance in the next few days.",
                "{{ company.company_name }}: reminder, {{ total_with_fees }} ({{ invoice_numbers }}) is overdue.",
                "Our records show that {{ total_with_fees }} are overdue.",
            ),
            "de": (
                "Zahlungserinnerung: {{ total_with_fees }} überfällig",
                "laut unseren Unterlagen {{ 'sind die folgenden Rechnungen' if invoice_count > 1 else 'ist die folgende Rechnung' }} {{ max_days_overdue }} Tage nach Fälligkeit noch offen. Vielleicht ist das im Tagesgeschäft untergegangen – das kann passieren.",
                "Wir wären Ihnen dankbar, wenn Sie den offenen Betrag in den nächsten Tagen begleichen.",
                "{{ company.company_name }}: Erinnerung, {{ total_with_fees }} ({{ invoice_numbers }}) sind überfällig.",
                "Laut unseren Unterlagen sind {{ total_with_fees }} überfällig.",
            ),
        },
    ),
    "firm_reminder": (
        "firm",
        {
            "en": (
                "Overdue: please pay {{ total_with_fees }} now",
                f"despite our earlier reminders, {_PL_EN} still unpaid, now {{{{ max_days_overdue }}}} days overdue.",
                "Please pay the full amount within 7 days. If there is a problem with an invoice, reply to this email so we can resolve it.",
                "{{ company.company_name }}: {{ total_with_fees }} ({{ invoice_numbers }}) is {{ max_days_overdue }} days overdue. Please pay within 7 days.",
                "Despite our reminders, {{ total_with_fees }} are still unpaid. Please pay within seven days.",
            ),
            "de": (
                "Mahnung: Bitte zahlen Sie {{ total_with_fees }} jetzt",
                "trotz unserer bisherigen Erinnerungen {{ 'sind die folgenden Rechnungen' if invoice_count > 1 else 'ist die folgende Rechnung' }} weiterhin unbezahlt und inzwischen {{ max_days_overdue }} Tage überfällig.",
                "Bitte überweisen Sie den Gesamtbetrag innerhalb von 7 Tagen. Sollte es ein Problem mit einer Rechnung geben, antworten Sie bitte auf diese E-Mail, damit wir es klären können.",
                "{{ company.company_name }}: {{ total_with_fees }} ({{ invoice_numbers }}) sind {{ max_days_overdue }} Tage überfällig. Bitte zahlen Sie innerhalb von 7 Tagen.",
                "Trotz unserer Erinnerungen sind {{ total_with_fees }} weiterhin unbezahlt. Bitte zahlen Sie innerhalb von sieben Tagen.",
            ),
        },
    ),
    "escalation_sms": (
        "urgent",
        {
            "en": (
                "Urgent: {{ total_with_fees }} seriously overdue",
                f"your account is seriously overdue: {_PL_EN} {{{{ max_days_overdue }}}} days past due, and we have received neither payment nor a response.",
                "Please pay now or contact us today to agree a payment date. Without payment or a response we will have to take further steps.",
                "{{ company.company_name }}: URGENT, {{ total_with_fees }} ({{ invoice_numbers }}) is seriously overdue. Pay now or agree a date: {{ promise_url }}",
                "Your account is seriously overdue: {{ total_with_fees }} are unpaid. Please pay now or contact us today.",
            ),
            "de": (
                "Dringend: {{ total_with_fees }} erheblich überfällig",
                f"Ihr Konto ist erheblich im Rückstand: {_PL_DE} seit {{{{ max_days_overdue }}}} Tagen überfällig, und wir haben weder eine Zahlung noch eine Rückmeldung erhalten.",
                "Bitte zahlen Sie umgehend oder vereinbaren Sie noch heute einen Zahlungstermin mit uns. Ohne Zahlung oder Rückmeldung müssen wir weitere Schritte einleiten.",
                "{{ company.company_name }}: DRINGEND, {{ total_with_fees }} ({{ invoice_numbers }}) sind erheblich überfällig. Jetzt zahlen oder Termin zusagen: {{ promise_url }}",
                "Ihr Konto ist erheblich im Rückstand: {{ total_with_fees }} sind unbezahlt. Bitte zahlen Sie umgehend oder melden Sie sich noch heute.",
            ),
        },
    ),
    "final_notice": (
        "final",
        {
            "en": (
                "Final notice before collection: {{ total_with_fees }}",
                f"this is our final notice: {_PL_EN} still unpaid, {{{{ max_days_overdue }}}} days after the due date.",
                "Unless we receive the full amount within 10 days, we will hand the claim over to a collection agency, which may cause you additional costs.",
                "{{ company.company_name }}: FINAL NOTICE, {{ total_with_fees }} ({{ invoice_numbers }}) unpaid. Pay within 10 days to avoid collection.",
                "This is our final notice: {{ total_with_fees }} are unpaid. Unless we receive payment within ten days, the claim goes to a collection agency.",
            ),
            "de": (
                "Letzte Mahnung vor Übergabe an das Inkasso: {{ total_with_fees }}",
                f"dies ist unsere letzte Mahnung: {_PL_DE} {{{{ max_days_overdue }}}} Tage nach Fälligkeit weiterhin unbezahlt.",
                "Geht der Gesamtbetrag nicht innerhalb von 10 Tagen bei uns ein, übergeben wir die Forderung an ein Inkassounternehmen. Dadurch können Ihnen weitere Kosten entstehen.",
                "{{ company.company_name }}: LETZTE MAHNUNG, {{ total_with_fees }} ({{ invoice_numbers }}) unbezahlt. Zahlen Sie innerhalb von 10 Tagen, um ein Inkasso zu vermeiden.",
                "Dies ist unsere letzte Mahnung: {{ total_with_fees }} sind unbezahlt. Geht die Zahlung nicht innerhalb von zehn Tagen ein, übergeben wir die Forderung an ein Inkassounternehmen.",
            ),
        },
    ),
    "collections_hand_off": (
        "formal",
        {
            "en": (
                "Your account has been referred to collections",
                f"as we have not received payment despite our reminders, {_PL_EN} now with our collections team.",
                "You can still settle the balance directly using the link below; doing so ends further collection activity.",
                "{{ company.company_name }}: {{ total_with_fees }} ({{ invoice_numbers }}) was referred to collections. You can still pay directly.",
                "As we have not received payment, {{ total_with_fees }} were referred to our collections team. You can still pay directly.",
            ),
            "de": (
                "Übergabe Ihrer offenen Posten an das Forderungsmanagement",
                "da trotz unserer Mahnungen keine Zahlung eingegangen ist, {{ 'wurden die folgenden Rechnungen' if invoice_count > 1 else 'wurde die folgende Rechnung' }} an unser Forderungsmanagement übergeben.",
                "Sie können den offenen Betrag weiterhin direkt über den folgenden Link begleichen; damit enden weitere Inkassomaßnahmen.",
                "{{ company.company_name }}: {{ total_with_fees }} ({{ invoice_numbers }}) wurden an das Forderungsmanagement übergeben. Sie können weiterhin direkt zahlen.",
                "Da keine Zahlung eingegangen ist, wurden {{ total_with_fees }} an unser Forderungsmanagement übergeben. Sie können weiterhin direkt zahlen.",
            ),
        },
    ),
}

# The call step reads the same urgent wording as the SMS step (its `voice` part).
TONES["escalation_call"] = TONES["escalation_sms"]
TONES["final_notice_letter"] = TONES["final_notice"]

# Tone names work as ids too, so a policy may name a template by its tone ("firm").
ALIASES: dict[str, str] = {
    "friendly": "pre_due_reminder",
    "neutral": "due_date_notice",
    "gentle": "gentle_follow_up",
    "firm": "firm_reminder",
    "urgent": "escalation_sms",
    "final": "final_notice",
    "formal": "collections_hand_off",
}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _assemble(template_id: str, language: str) -> TemplateSource:
    _tone, by_language = TONES[template_id]
    subject, opening, closing, sms_lead, voice_lead = by_language[language]
    text = (
        f"{GREETING[language]}\n\n{opening}\n\n"
        f'{{% include "invoices.{language}.txt" %}}\n\n\n{closing}\n\n'
        f'{{% include "links.{language}.txt" %}}\n\n\n{{% include "signature.{language}.txt" %}}\n'
    )
    html = (
        f'{{% extends "layout.{language}.html" %}}\n'
        f"{{% block title %}}{subject}{{% endblock %}}\n"
        f"{{% block body %}}<p>{GREETING[language]}</p>\n<p>{opening}</p>{{% endblock %}}\n"
        f"{{% block closing %}}<p>{closing}</p>\n{SIGN_OFF_HTML[language]}{{% endblock %}}\n"
    )
    return TemplateSource(
        template_id=template_id,
        locale=language,
        subject=subject,
        text=text,
        html=html,
        sms=f"{sms_lead} {SMS_TAIL[language]}",
        voice=f"{VOICE_HELLO[language]} {_capitalised(voice_lead)} {VOICE_TAIL[language]}",
        origin="shipped",
    )


SHIPPED: dict[tuple[str, str], TemplateSource] = {
    (template_id, language): _assemble(template_id, language) for template_id in TONES for language in LANGUAGES
}


def shipped(template_id: str, language: str) -> TemplateSource | None:
    template_id = ALIASES.get(template_id, template_id)
    return SHIPPED.get((template_id, language)) or SHIPPED.get((template_id, "en"))


def shipped_ids() -> list[str]:
    return sorted(TONES)
