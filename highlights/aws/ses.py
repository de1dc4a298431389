"""Delivering a notification through Amazon SES."""

from __future__ import annotations

from email import policy
from typing import Any

from highlights.notify import DeliveryError
from highlights.outputs.notification import Notification, email_message


class SesNotifier:
    """Sends through Amazon SES from a verified `sender`. `client` is a boto3 SES client."""

    def __init__(self, client: Any, sender: str) -> None:
        self.client = client
        self.sender = sender

    def send(self, notification: Notification) -> str:
        message = email_message(notification, sender=self.sender)
        try:
            response = self.client.send_raw_email(
                Source=self.sender,
                Destinations=list(notification.recipients),
                RawMessage={"Data": message.as_bytes(policy=policy.SMTP)},
            )
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in ("MessageRejected", "MailFromDomainNotVerifiedException"):
                raise
            raise DeliveryError(
                f"SES refused mail from {self.sender}: {exc} (is the sender verified in SES?)"
            ) from None
        return str(response["MessageId"])
