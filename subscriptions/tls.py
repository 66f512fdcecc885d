"""A webhook's TLS: an SSL context with its client certificate (mutual TLS) and the CA it trusts."""

import os
import ssl
import tempfile


def ssl_context_build(*, cert: str = "", key: str = "", ca: str = "") -> ssl.SSLContext:
    """A client context that verifies the server (against `ca` when given, else the system's
    CAs) and presents `cert` with `key` when given. Raises ValueError saying what is wrong."""
    context = ssl.create_default_context()
    if ca:
        try:
            context = ssl.create_default_context(cadata=ca)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"the CA certificate cannot be read as PEM ({_reason(exc)})") from exc
    if cert:
        # The ssl module reads a certificate chain only from files: written to a private
        # directory, read, and removed at once.
        with tempfile.TemporaryDirectory(prefix="agentbot-tls-") as folder:
            cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            for path, text in ((cert_path, cert), (key_path, key)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                    out.write(text)
            try:
                context.load_cert_chain(cert_path, key_path)
            except (ssl.SSLError, ValueError, OSError) as exc:
                raise ValueError(
                    f"the client certificate and key cannot be loaded: PEM of a certificate and its unencrypted private key "
                    f"are expected ({_reason(exc)})"
                ) from exc
    return context


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or type(exc).__name__
