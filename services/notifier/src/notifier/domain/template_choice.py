"""Which template renders a step: the tenant's own (exact locale, then language) before the shipped one,
then the tenant's default language, then English. None = unknown template (the delivery fails)."""

from __future__ import annotations

from collections.abc import Mapping

from notifier.domain.default_templates import shipped
from notifier.domain.rendering import TemplateSource, language_of


def choose_template(
    tenant_templates: Mapping[tuple[str, str], TemplateSource],
    template_id: str,
    locale: str,
    default_locale: str = "en",
) -> TemplateSource | None:
    language = language_of(locale)
    default_language = language_of(default_locale)
    for key in ((template_id, locale), (template_id, language)):
        if key in tenant_templates:
            return tenant_templates[key]
    ours = shipped(template_id, language)
    if ours is not None and ours.locale == language:
        return ours
    if (template_id, default_language) in tenant_templates:
        return tenant_templates[(template_id, default_language)]
    if ours is not None:
        return ours
    for (tid, _loc), template in sorted(tenant_templates.items()):
        if tid == template_id:
            return template
    return None
