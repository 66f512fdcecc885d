"""A local OAuth2 token endpoint (client credentials) for end-to-end tests: checks the client's
Basic credentials, issues numbered bearer tokens, and remembers which it issued."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus


class TokenEndpoint:
    def __init__(self, *, client_id: str, client_secret: str, expires_in: int = 3600) -> None:
        self.issued: list[str] = []
        self.requests: list[dict] = []  # the form of each token request
        self.expires_in = expires_in
        self.lock = threading.Lock()
        expected = (client_id, client_secret)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                with endpoint.lock:
                    endpoint.requests.append({k: v[0] for k, v in form.items()})
                    if endpoint.client_of(self.headers.get("Authorization", "")) != expected or form.get("grant_type") != [
                        "client_credentials"
                    ]:
                        status, answer = 401, {"error": "invalid_client"}
                    else:
                        token = f"token-{len(endpoint.issued) + 1}"
                        endpoint.issued.append(token)
                        status, answer = 200, {"access_token": token, "token_type": "Bearer", "expires_in": endpoint.expires_in}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @staticmethod
    def client_of(authorization: str) -> tuple[str, str] | None:
        """(id, secret) of a Basic header, each form-decoded as RFC 6749 §2.3.1 has it."""
        if not authorization.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return unquote_plus(user), unquote_plus(password)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/oauth/token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
