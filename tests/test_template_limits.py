"""Message templates have limits: the source's size, the rendered size per channel (e-mail
100,000 characters, WhatsApp 1,024, SMS 1,600) and a budget of steps and time for each render,
with the sandbox's repetition, padding, formatting, joining and loops checked before they make
anything large. Checked when saving, when previewing and when sending."""

from __future__ import annotations

import tracemalloc

import pytest

from app.message_templates.models import MessageTemplate
from app.message_templates.rendering import (
    SAMPLE_CONTEXT,
    TemplateProblem,
    render_for_channel,
    template_errors,
)
from app.message_templates.sandbox import TOO_SLOW

FIFTY_MB = "{{ 'a' * 50000000 }}"
NESTED_LOOPS = "{% for a in contact.name %}" * 6 + "{{ a }}" + "{% endfor %}" * 6


def errors_of(body: str, channel: str = "email") -> dict[str, str]:
    return template_errors(channel, "Hello" if channel == "email" else None, body)


def test_fifty_megabytes_of_repetition_is_refused_without_being_made():
    tracemalloc.start()
    try:
        errors = errors_of(FIFTY_MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "longer than 100,000 characters" in errors["body"]
    assert peak < 5_000_000  # never near the 50 MB the template asks for


def test_nested_loops_over_a_contact_name_are_stopped_by_the_budget():
    assert errors_of(NESTED_LOOPS) == {"body": TOO_SLOW}
    # Loops a message needs still run.
    fine = "{% for word in contact.name.split() %}[{{ word }}]{% endfor %}"
    assert errors_of(fine) == {}


@pytest.mark.parametrize(
    "body",
    [
        "{{ contact.name | center(100000000) }}",
        "{{ contact.name.ljust(100000000) }}",
        "{{ '%0100000000d' % 1 }}",
        "{{ '%*d' % (100000000, 1) }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ '{:{}}'.format(1, 100000000) }}",
        "{{ '%s' | format(1) | indent(100000000) }}",
        "{{ contact.name | replace('a', contact.name * 1000)"
        " | replace('a', contact.name * 1000) }}",
        "{{ (contact.name * 10000) | list | join(contact.name * 1000) }}",
        "{{ [contact.name] * 100000000 }}",
        "{{ 99 ** 99999999 }}",
        "{% set a = contact.name * 1000 %}{% set b = a ~ a ~ a ~ a ~ a %}"
        "{% set c = b ~ b ~ b ~ b ~ b %}{% set d = c ~ c ~ c ~ c ~ c %}{{ d | length }}",
        "{% for i in contact.name * 100 %}" + "text " * 1000 + "{% endfor %}",
    ],
)
def test_repetition_padding_formatting_and_joins_are_limited(body):
    tracemalloc.start()
    try:
        errors = errors_of(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert set(errors) == {"body"}
    assert "longer than" in errors["body"] or errors["body"] == TOO_SLOW
    assert peak < 20_000_000


def test_each_channel_has_its_own_rendered_length():
    whatsapp = "Hello {{1}}\n---\n{{ contact.name * 200 }}"  # 1,600 characters
    assert (
        "1,024 characters, the most a WhatsApp message can have"
        in errors_of(whatsapp, "whatsapp")["body"]
    )
    sms = "Dear {{ contact.name * 250 }}"
    assert "1,600 characters, the most an SMS can have" in errors_of(sms, "sms")["body"]
    assert errors_of("{{ contact.name * 250 }}", "email") == {}  # 2,000: fine for an e-mail
    assert errors_of("x{{ contact.name * 13000 }}")["body"].endswith("an e-mail can have.")
    long_subject = template_errors("email", "{{ contact.name * 200 }}", "Hello")
    assert "The subject would be longer than 998 characters" in long_subject["subject"]
    # The subject as written fits its column (255); longer is refused beside it, not a 500.
    assert "At most 255" in template_errors("email", "x" * 256, "Hello")["subject"]


def test_ordinary_templates_render_as_before():
    body = (
        "Dear {{ contact.first_name | title }},\n{{ '%.2f' | format(12.5) }} "
        "{{ '{:,}'.format(1234567) }} {{ client.name | truncate(10) }} "
        "{{ [tenant.name, client.short_name] | join(', ') }} {{ 3 * 4 }}"
    )
    rendered = render_for_channel(
        _draft("email", "Hi {{ contact.first_name }}", body), SAMPLE_CONTEXT
    )
    assert rendered.text == ("Dear Asha,\n12.50 1,234,567 Sample... Sample Traders, Sample 12")
    sms = render_for_channel(
        _draft("sms", None, "Hi {{ contact.first_name }}, pay {{ amount_due }} today."),
        SAMPLE_CONTEXT,
    )
    assert sms.sms["variables"] == {"var1": "Asha", "var2": "₹2,36,000.00"}


def _draft(channel, subject, body):
    return MessageTemplate(
        name="Draft", channel=channel, purpose="campaign", language="en", subject=subject, body=body
    )


def test_render_for_channel_refuses_at_send_time_too():
    with pytest.raises(TemplateProblem) as problem:
        render_for_channel(_draft("sms", None, FIFTY_MB), SAMPLE_CONTEXT)
    assert problem.value.field == "body" and "SMS" in problem.value.message
    with pytest.raises(TemplateProblem, match="too long to render"):
        render_for_channel(_draft("email", "Hi", NESTED_LOOPS), SAMPLE_CONTEXT)
