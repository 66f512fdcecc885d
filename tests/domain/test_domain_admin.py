"""The domain's admin shows the agent's records and does not edit them behind the event stream."""

import pytest

from domain import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_admin_lists_and_shows_the_domain_records_read_only(staff, site):
    conversation = services.conversation_create(site=site, channel="email", visitor_email="ada@example.com")
    services.message_create(conversation=conversation, sender_type="visitor", body="Order inquiry")
    ticket = services.ticket_create(site=site, subject="Where is my order?", conversation_id=conversation.id)
    lead = services.lead_create(site=site, email="ada@example.com")
    appointment = services.appointment_create(site=site, phone="+441234")

    for record in (conversation, ticket, lead, appointment):
        page = staff.get(f"/admin/domain/{record._meta.model_name}/")
        assert page.status_code == 200 and record.id.encode() in page.content
    detail = staff.get(f"/admin/domain/conversation/{conversation.id}/change/")
    assert detail.status_code == 200 and b"Order inquiry" in detail.content
    assert b'name="_save"' not in detail.content, "the change page has no save button"
    assert staff.get("/admin/domain/ticket/add/").status_code == 403
    assert staff.post(f"/admin/domain/ticket/{ticket.id}/change/", {"subject": "x"}).status_code == 403
