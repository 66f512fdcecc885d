"""The outbound client against a real local receiver: the URL policy again at send time, no
redirects, capped bodies."""

import pytest

from deliveries.engine import http


def request_to(url: str) -> http.OutboundRequest:
    return http.OutboundRequest(url=url, body=b'{"event":"webhook.test"}', headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_url_that_now_resolves_to_a_private_address_is_refused_at_send_time(receiver, settings, host):
    # The webhook was accepted earlier (private URLs allowed then, or its DNS has changed since).
    settings.AGENTBOT_ALLOW_PRIVATE_URLS = False
    url = receiver.url.replace("127.0.0.1", host)
    result = http.post(request_to(url))
    assert result.status_code is None and result.error.startswith("refused:")
    assert "non-public address" in result.error
    assert receiver.received == [], "nothing may reach the refused address"


def test_allowed_url_is_sent_and_its_response_body_is_capped(receiver, settings):
    settings.AGENTBOT_RESPONSE_BODY_CAP = 100
    receiver.responder = lambda n: (200, b"x" * 5000)
    result = http.post(request_to(receiver.url))
    assert result.status_code == 200 and result.body == b"x" * 100
    assert len(receiver.received) == 1


def test_redirect_is_returned_not_followed(receiver):
    receiver.responder = lambda n: (307, b"", {"Location": "http://127.0.0.1:9/elsewhere"})
    result = http.post(request_to(receiver.url))
    assert result.status_code == 307 and len(receiver.received) == 1
