"""Delivering a notification without a cloud account: an .eml file, or an SMTP server."""

from __future__ import annotations

import smtplib
import ssl
from email import policy
from pathlib import Path

from highlights.config import MailConfig
from highlights.errors import ConfigError
from highlights.files import write_bytes_atomic
from highlights.notify import DeliveryError
from highlights.outputs.notification import Notification, email_message


class EmlNotifier:
    """Writes the message to an .eml file, replacing the previous one atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, notification: Notification) -> str:
        message = email_message(notification)
        write_bytes_atomic(self.path, message.as_bytes(policy=policy.SMTP))  # CRLF lines
        return str(message["Message-ID"])


class SmtpNotifier:
    """Sends through the SMTP server named in MailConfig (STARTTLS and login when configured).

    `ssl_context` verifies the server's certificate (default: the system's trusted CAs).
    """

    def __init__(
        self, config: MailConfig, ssl_context: ssl.SSLContext | None = None, timeout: float = 30.0
    ) -> None:
        if not config.smtp_host:
            raise ConfigError("mail.smtp_host is not set: name the SMTP server to send through")
        self.config = config
        self.ssl_context = ssl_context
        self.timeout = timeout

    def send(self, notification: Notification) -> str:
        config = self.config
        message = email_message(notification)
        server = f"{config.smtp_host}:{config.smtp_port}"
        try:
            with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=self.timeout) as smtp:
                if config.smtp_starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if config.smtp_user:
                    smtp.login(config.smtp_user, config.smtp_password or "")
                smtp.send_message(message)
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"SMTP server {server} does not offer STARTTLS ({exc}); set "
                "mail.smtp_starttls = false only for a server you trust on this network"
            ) from None
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError(
                f"SMTP server {server} refused the login for {config.smtp_user!r}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"could not send mail through {server}: {exc}") from None
        return str(message["Message-ID"])
