"""Telling people about a match's highlights: one message, three ways to deliver it.

`build_notification` makes the message; a `Notifier` delivers it: `EmlNotifier` writes an
RFC 5322 .eml file (locally, no server needed), `SmtpNotifier` sends through an SMTP server,
`SesNotifier` sends through Amazon SES. Sending the same notification twice sends two mails:
deciding whether to send again is the caller's job.

Header values are built from names we do not control (a video may be called anything the
filesystem allows, line breaks included), so `email_message` folds every line break, Unicode
line or paragraph separator and control character in the subject into a space, and refuses an
address that holds one.
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

from highlights.config import MailConfig
from highlights.errors import ConfigError, HighlightsError
from highlights.files import write_bytes_atomic
from highlights.segments import Segment, game_time

_DEFAULTS = MailConfig()
# Cc: C0/C1 controls (CR, LF, NEL U+0085, ...); Zl/Zp: U+2028, U+2029. Any of them could end a
# header line for some reader of the message.
_BREAKING_CATEGORIES = ("Cc", "Zl", "Zp")


class DeliveryError(HighlightsError):
    """A notification could not be delivered (server unreachable, refused, not verified)."""


@dataclass(frozen=True)
class Notification:
    subject: str
    sender: str
    recipients: tuple[str, ...]
    text: str
    html: str
    links: list[tuple[str, str]] = field(default_factory=list)  # (title, url)


def _describe(segment: Segment) -> str:
    return (
        f"{game_time(segment.start)}–{game_time(segment.end)} ({segment.duration:.1f} s), "
        f"{segment.label}, score {segment.score:.2f}"
    )


def build_notification(
    match_name: str,
    segments: Sequence[Segment],
    clip_links: Sequence[tuple[str, str]],
    report_link: str | None,
    *,
    sender: str = _DEFAULTS.sender,
    recipients: Sequence[str] = _DEFAULTS.recipients,
    extra_links: Sequence[tuple[str, str]] = (),
) -> Notification:
    """The message for one match: one line and link per highlight, `extra_links` (title, url)
    such as the reel, then the report."""
    if len(clip_links) != len(segments):
        raise ValueError(f"{len(segments)} segments but {len(clip_links)} clip links")
    if not recipients:
        raise ConfigError("mail.recipients is empty: name at least one address to notify")
    count = f"{len(segments)} highlight{'s' if len(segments) != 1 else ''}"
    links = [
        (f"{title}: {_describe(segment)}", url)
        for segment, (title, url) in zip(segments, clip_links, strict=True)
    ]
    links += list(extra_links)
    if report_link:
        links.append(("Report", report_link))
    return Notification(
        subject=f"{count} in {match_name}",
        sender=sender,
        recipients=tuple(recipients),
        text=_text(match_name, count, segments, clip_links, extra_links, report_link),
        html=_html(match_name, count, segments, clip_links, extra_links, report_link),
        links=links,
    )


def _text(
    match: str,
    count: str,
    segments: Sequence[Segment],
    clip_links: Sequence[tuple[str, str]],
    extra_links: Sequence[tuple[str, str]],
    report_link: str | None,
) -> str:
    lines = [f"{count} found in {match}.", ""]
    for i, (segment, (title, url)) in enumerate(zip(segments, clip_links, strict=True), 1):
        lines += [f"{i}. {_describe(segment)}", f"   {title}: {url}"]
    if extra_links:
        lines += [""] + [f"{title}: {url}" for title, url in extra_links]
    if report_link:
        lines += ["", f"Report: {report_link}"]
    return "\n".join(lines) + "\n"


def _html(
    match: str,
    count: str,
    segments: Sequence[Segment],
    clip_links: Sequence[tuple[str, str]],
    extra_links: Sequence[tuple[str, str]],
    report_link: str | None,
) -> str:
    e = html.escape
    items = "".join(
        f'<li>{e(_describe(segment))}: <a href="{e(url)}">{e(title)}</a></li>'
        for segment, (title, url) in zip(segments, clip_links, strict=True)
    )
    extras = "".join(f'<p><a href="{e(url)}">{e(title)}</a></p>' for title, url in extra_links)
    report = f'<p><a href="{e(report_link)}">Open the report</a></p>' if report_link else ""
    return (
        f"<!DOCTYPE html><html><body><p>{e(count)} found in <b>{e(match)}</b>.</p>"
        f"<ol>{items}</ol>{extras}{report}</body></html>"
    )


def _breaks_lines(char: str) -> bool:
    return unicodedata.category(char) in _BREAKING_CATEGORIES


def header_text(value: str) -> str:
    """`value` on one header line: line breaks, separators and controls become single spaces."""
    spaced = "".join(" " if _breaks_lines(char) else char for char in value)
    return re.sub(r" {2,}", " ", spaced).strip()


def _address(value: str) -> str:
    if any(_breaks_lines(char) for char in value):
        raise ConfigError(f"mail address {value!r} holds a line break or control character")
    return value


def email_message(notification: Notification, sender: str | None = None) -> EmailMessage:
    """The notification as a multipart/alternative (text, then HTML) RFC 5322 message."""
    sender = _address(sender or notification.sender)
    message = EmailMessage()
    message["Subject"] = header_text(notification.subject)
    message["From"] = sender
    message["To"] = ", ".join(_address(r) for r in notification.recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message.set_content(notification.text)
    message.add_alternative(notification.html, subtype="html")
    return message


class Notifier(Protocol):
    def send(self, notification: Notification) -> str:
        """Deliver the notification; return its message id."""


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
