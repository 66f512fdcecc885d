"""Endpoint health: what a run of failures does to a webhook.

- Every attempt's outcome updates the webhook's streak: a success resets it; failures count up.
- After AGENTBOT_CIRCUIT_THRESHOLD consecutive failures the circuit opens: the webhook's
  deliveries stay pending (nothing is lost) but are not handed to workers, except one probe per
  AGENTBOT_CIRCUIT_PROBE_INTERVAL; the first success closes the circuit again.
- A receiver that answers 410 Gone, or that its format reads as gone for good (Slack's
  `no_service`, Discord's Unknown Webhook), is disabled at once; one whose every delivery has failed for
  AGENTBOT_DISABLE_AFTER_DAYS is disabled too. Both record the reason and the time.
- Before that, the owner is warned: `webhook.failing` when the failing streak has lasted 50, 75
  and 90 per cent of AGENTBOT_DISABLE_AFTER_DAYS (once each per streak, `failing_level`), and
  `webhook.recovered` when a webhook so announced (or whose circuit opened) succeeds again.
- The owner hears about it: the fold yields a Notice (`webhook.circuit_opened`,
  `webhook.disabled`, `webhook.failing`, `webhook.recovered`) for its caller to publish as an
  event of the webhook's site (deliveries/services/send.py), inside the transaction that changed
  the webhook.
"""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deliveries import bulk
from deliveries.formats.types import iso_utc
from subscriptions.event_types import WEBHOOK_CIRCUIT_OPENED, WEBHOOK_DISABLED, WEBHOOK_FAILING, WEBHOOK_RECOVERED
from subscriptions.models import Webhook


@dataclass(frozen=True)
class EndpointAnswer:
    """What one attempt tells of the webhook's endpoint: answered well or not, with what, when."""

    webhook_id: str
    ok: bool
    status_code: int | None
    at: datetime
    gone_reason: str = ""  # the format read the answer as the receiver gone for good (formats.DeliveryFormat.gone)


@dataclass(frozen=True)
class Notice:
    """An event the webhook's owner should hear of: `event_type` with `data`, on `site`."""

    site: object
    event_type: str
    data: dict = field(default_factory=dict)


def _probe_interval() -> timedelta:
    return timedelta(seconds=settings.AGENTBOT_CIRCUIT_PROBE_INTERVAL)


def webhooks_record_outcomes(*, outcomes: list[EndpointAnswer]) -> Iterator[Notice]:
    """Fold a batch of attempt outcomes into each webhook's health, in one short transaction each.

    Yields the notices to publish, each from inside the transaction of the webhook it is about:
    published there, the webhook's new state and the event telling of it commit together. Consume
    it whole (a loop); a failure while handling a notice rolls that webhook's change back."""
    by_webhook: dict[str, list[EndpointAnswer]] = defaultdict(list)
    for outcome in sorted(outcomes, key=lambda o: o.at):
        by_webhook[outcome.webhook_id].append(outcome)
    # Nothing but successes (the usual batch) leaves a webhook healthy whatever it was before: the
    # fold below comes to the same, so all of them are written by one statement.
    succeeded = {webhook_id: runs[-1].at for webhook_id, runs in by_webhook.items() if all(o.ok for o in runs)}
    if succeeded:
        recovered = bulk.webhooks_succeeded(last_success=succeeded, now=timezone.now())
        for webhook in Webhook.objects.filter(pk__in=recovered).select_related("site") if recovered else ():
            with transaction.atomic():
                yield _notice(webhook, WEBHOOK_RECOVERED.name, recovered_at=succeeded[webhook.pk])
    for webhook_id, runs in by_webhook.items():
        if webhook_id in succeeded:
            continue
        with transaction.atomic():
            webhook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
            if webhook is not None:
                yield from _fold(webhook, runs)


FAILING_LEVELS = (50, 75, 90)  # per cent of the way to being disabled


def failing_level_reached(failing_since: datetime | None, now: datetime) -> int:
    """The highest of FAILING_LEVELS the failing streak has passed (0 for none)."""
    if failing_since is None:
        return 0
    window = timedelta(days=settings.AGENTBOT_DISABLE_AFTER_DAYS)
    part = (now - failing_since) / window if window else 1.0
    return max((level for level in FAILING_LEVELS if part * 100 >= level), default=0)


def _fold(webhook: Webhook, outcomes: list[EndpointAnswer]) -> list[Notice]:
    now = timezone.now()
    was_open = webhook.circuit_open
    announced = webhook.failing_level > 0 or was_open
    for outcome in outcomes:
        if outcome.ok:
            webhook.consecutive_failures = 0
            webhook.failing_since = None
            webhook.last_success_at = outcome.at
            webhook.circuit_opened_at = webhook.circuit_probe_at = None
            webhook.failing_level = 0
        else:
            webhook.consecutive_failures += 1
            webhook.failing_since = webhook.failing_since or outcome.at
    recovered = announced and outcomes[-1].ok
    gone = next((o.gone_reason for o in outcomes if not o.ok and o.gone_reason), "")
    if not gone and any(o.status_code == 410 for o in outcomes if not o.ok):
        gone = "the receiver answered 410 Gone"
    opens = not was_open and webhook.consecutive_failures >= settings.AGENTBOT_CIRCUIT_THRESHOLD and not outcomes[-1].ok
    if opens:
        webhook.circuit_opened_at = now
        webhook.circuit_probe_at = now + _probe_interval()
    window = timedelta(days=settings.AGENTBOT_DISABLE_AFTER_DAYS)
    reason = ""
    if gone:
        reason = gone
    elif webhook.failing_since and now - webhook.failing_since >= window:
        reason = f"every delivery failed since {webhook.failing_since:%Y-%m-%d %H:%M} UTC ({window.days} days or more)"
    disables = bool(reason) and webhook.enabled
    if disables:
        webhook.enabled = False
        webhook.disabled_reason = reason
        webhook.disabled_at = now
    level = 0 if outcomes[-1].ok or disables else failing_level_reached(webhook.failing_since, now)
    warns = level > webhook.failing_level
    if warns:
        webhook.failing_level = level
    webhook.save()
    if disables:
        return [_notice(webhook, WEBHOOK_DISABLED.name, reason=reason, disabled_at=now)]
    notices = []
    if opens:
        notices.append(
            _notice(
                webhook,
                WEBHOOK_CIRCUIT_OPENED.name,
                consecutive_failures=webhook.consecutive_failures,
                next_probe_at=webhook.circuit_probe_at,
            )
        )
    if warns:
        notices.append(
            _notice(
                webhook,
                WEBHOOK_FAILING.name,
                percent=level,
                consecutive_failures=webhook.consecutive_failures,
                failing_since=webhook.failing_since,
                disables_at=webhook.failing_since + window,
            )
        )
    if recovered:
        notices.append(_notice(webhook, WEBHOOK_RECOVERED.name, recovered_at=webhook.last_success_at))
    return notices


def _notice(webhook: Webhook, event_type: str, **extra) -> Notice:
    data = {"webhook_id": webhook.id, "url": webhook.displayed_url}
    data.update({k: iso_utc(v) if isinstance(v, datetime) else v for k, v in extra.items()})
    return Notice(site=webhook.site, event_type=event_type, data=data)


def webhook_probe_take(*, webhook_id: str, now: datetime) -> bool:
    """Claim the right to send one probe to an open circuit now; pushes the next probe time on."""
    return bool(
        Webhook.objects.filter(pk=webhook_id, circuit_opened_at__isnull=False, circuit_probe_at__lte=now).update(
            circuit_probe_at=now + _probe_interval()
        )
    )


def webhooks_probe_due(*, now: datetime) -> list[str]:
    return list(
        Webhook.objects.filter(enabled=True, circuit_opened_at__isnull=False, circuit_probe_at__lte=now).values_list(
            "id", flat=True
        )
    )


RATE_LIMIT_CODES = (429, 503)


def retry_after_seconds(headers: dict[str, str], *, now: datetime) -> float | None:
    """The receiver's Retry-After, in seconds or as an HTTP date; None when absent or unreadable."""
    from email.utils import parsedate_to_datetime

    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((moment - now).total_seconds(), 0.0) if moment.tzinfo else None


def retry_delay(step: float, *, status_code: int | None, headers: dict[str, str], now: datetime) -> float:
    """The wait before the next attempt: the schedule's step, stretched by a receiver's Retry-After
    on 429/503, but never sooner than the step and never later than twice it."""
    if status_code not in RATE_LIMIT_CODES:
        return step
    asked = retry_after_seconds(headers, now=now)
    if asked is None:
        return step
    return min(max(asked, step), 2 * step)


def probes_claim(*, now: datetime, until: datetime, token: str) -> list[str]:
    """One due delivery for each open circuit whose probe time has come, leased with `token` (of an
    ordered webhook, the head of a key: a probe never jumps its key's order)."""
    from deliveries import bulk
    from deliveries.models import Delivery

    probes = []
    for webhook_id in webhooks_probe_due(now=now):
        with transaction.atomic():
            if not webhook_probe_take(webhook_id=webhook_id, now=now):
                continue
            probe = (
                bulk.heads(bulk.due_unleased(now=now).filter(webhook_id=webhook_id))
                .order_by("next_attempt_at")
                .select_for_update(skip_locked=True, no_key=True)
                .values_list("id", flat=True)
                .first()
            )
            if probe is None:
                continue
            Delivery.objects.filter(pk=probe).update(leased_until=until, lease_token=token)
            probes.append(probe)
    return probes
