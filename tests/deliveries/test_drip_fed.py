"""A receiver that answers 200 and then drips its body past the timeout: the attempt timed out,
and is not also a success."""

import socket
import threading
import time

import pytest
from django.db import transaction

from deliveries import engine
from deliveries.models import Attempt
from deliveries.services.publish import event_publish
from deliveries.services.send import deliveries_send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _engine_stopped_afterwards():
    yield
    engine.engine_stop(timeout=5)


class DripServer:
    """Answers `200 OK` with a Content-Length of 100 at once, then one byte every 0.3 s."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(b" ")
                except OSError:
                    return
                time.sleep(0.3)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_200_whose_body_drips_past_the_timeout_is_a_failed_attempt_not_a_success(site, webhook_factory, settings):
    settings.AGENTBOT_HTTP_TIMEOUT = 1
    drip = DripServer()
    try:
        webhook_factory(site=site, url=drip.url)
        with transaction.atomic():
            event, _ = event_publish(site=site, event_type="webhook.test", data={"message": "hi"})
        delivery = event.deliveries.get()

        deliveries_send(ids=[delivery.id], token=delivery.lease_token)

        (attempt,) = Attempt.objects.filter(delivery=delivery)
        assert attempt.status_code == 200
        assert attempt.error.startswith("timed out after 1 s reading the response body")
        assert attempt.succeeded is False
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempt_count) == ("pending", 1), "retried on its schedule"
    finally:
        drip.close()
