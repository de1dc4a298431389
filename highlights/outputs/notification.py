"""The mail about a match's highlights: subject, text and HTML body, and the RFC 5322 message.

Header values are built from names we do not control (a video may be called anything the
filesystem allows, line breaks included), so `email_message` folds every line break, Unicode
line or paragraph separator and control character in the subject into a space, and refuses an
address that holds one.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from highlights.config import MailConfig
from highlights.errors import ConfigError
from highlights.segments import Segment, game_time

_DEFAULTS = MailConfig()


# Cc: C0/C1 controls (CR, LF, NEL U+0085, ...); Zl/Zp: U+2028, U+2029. Any of them could end a
# header line for some reader of the message.
_BREAKING_CATEGORIES = ("Cc", "Zl", "Zp")


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
