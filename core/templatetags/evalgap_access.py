"""`{% load evalgap_access %}` … `{{ turn.query|shown_to:user }}`: turn text on a page, redacted for a
user without production.view_raw_turns (the same rule as the API's RedactedFieldsMixin)."""
from django import template

from core.roles import RAW_TURNS, has, redact_value

register = template.Library()


@register.filter
def shown_to(value, user):
    return value if has(user, RAW_TURNS) else redact_value(value)
