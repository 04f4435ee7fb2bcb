from django import template

from accounts.models import Report

register = template.Library()


@register.simple_tag
def report_reasons():
    """The reasons a report may give, for the report form."""
    return Report.Reason.choices
