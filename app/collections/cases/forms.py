"""The forms of the Collections tab: their names (each keeps its own values and errors when
the tab is shown again after a refused submission) and the client's collection terms as form
values. The rules themselves are in the services (cases, promises, disputes, holds)."""

from __future__ import annotations

from app.clients.models import Client

# terms: policy, collector, interest; acceptance: an invoice's acceptance date; promise,
# dispute, hold: new ones; resolve: ending a dispute; interest: settling interest a notice
# claimed.
TAB_FORMS = ("terms", "acceptance", "promise", "dispute", "resolve", "hold", "interest")


def terms_values(client: Client) -> dict[str, str]:
    rate = client.late_interest_rate
    return {
        "collection_policy_id": str(client.collection_policy_id or ""),
        "collector_user_id": str(client.collector_user_id or ""),
        "late_interest_mode": client.late_interest_mode or "none",
        "late_interest_rate": "" if rate is None else f"{rate.normalize():f}",
        "payment_agreed_in_writing": "1" if client.payment_agreed_in_writing else "",
    }
