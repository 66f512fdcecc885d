"""Finished inbound events are deleted after the retention period; unfinished ones are kept."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inbound import integrations, services
from inbound.connectors.webhook_channel import uploads
from inbound.models import InboundEvent, Integration, UploadedFile

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


def test_old_uploads_and_day_old_unfinished_ones_are_deleted_with_their_files(site, settings, tmp_path):
    settings.AGENTBOT_RETENTION_DAYS = 30
    settings.STORAGES = {
        **settings.STORAGES,
        "agentbot_uploads": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    instance = integrations.integration_create(site=site, connector_type="webhook")
    old = uploads.upload_create(integration=instance, name="old.txt", content=b"old")
    fresh = uploads.upload_create(integration=instance, name="fresh.txt", content=b"fresh")
    stalled = uploads.upload_init(integration=instance, name="stalled.txt")
    uploads.upload_part(upload=stalled, number=1, content=b"part")
    UploadedFile.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    UploadedFile.objects.filter(pk=stalled.pk).update(created_at=timezone.now() - timedelta(hours=25))

    assert uploads.uploads_purge_old() == 2

    assert list(UploadedFile.objects.values_list("id", flat=True)) == [fresh.id]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [fresh.storage_name]
