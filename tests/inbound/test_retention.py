"""Finished inbound events are deleted after the retention period; unfinished ones are kept."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inbound import services
from inbound.models import InboundEvent, Integration

pytestmark = pytest.mark.django_db


def test_old_finished_inbound_events_are_deleted_and_pending_or_recent_ones_kept(site, settings):
    settings.AGENTBOT_RETENTION_DAYS = 30
    integration = Integration.objects.create(site=site)
    old = timezone.now() - timedelta(days=31)

    def event(status: str, received_at):
        return InboundEvent.objects.create(
            integration=integration, kind="message", payload={}, status=status, received_at=received_at
        )

    gone = [event("processed", old), event("ignored", old), event("failed", old)]
    kept = [event("received", old), event("accepted", old), event("processed", timezone.now() - timedelta(days=29))]

    assert services.inbound_purge_old(batch_size=2) == 3
    assert set(InboundEvent.objects.values_list("id", flat=True)) == {e.id for e in kept}
    assert not InboundEvent.objects.filter(id__in=[e.id for e in gone]).exists()
