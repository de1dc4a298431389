"""Telling people about a match's highlights: a `Notifier` delivers the message
(`highlights.outputs.notification`). `EmlNotifier` writes an RFC 5322 .eml file and
`SmtpNotifier` sends through an SMTP server (`highlights.local.mail`); `SesNotifier` sends
through Amazon SES (`highlights.aws.ses`). Sending the same notification twice sends two mails:
deciding whether to send again is the caller's job.
"""

from __future__ import annotations

from typing import Protocol

from highlights.errors import HighlightsError
from highlights.outputs.notification import Notification


class DeliveryError(HighlightsError):
    """A notification could not be delivered (server unreachable, refused, not verified)."""


class Notifier(Protocol):
    def send(self, notification: Notification) -> str:
        """Deliver the notification; return its message id."""
