"""Specification of the notification mail: content, .eml file, a real SMTP server, SES (moto)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from highlights.aws.ses import SesNotifier
from highlights.config import Config, MailConfig, SegmentConfig
from highlights.errors import ConfigError
from highlights.local.mail import EmlNotifier, SmtpNotifier
from highlights.notify import DeliveryError
from highlights.outputs.notification import Notification, build_notification, email_message
from highlights.outputs.segments_json import write_segments_json
from highlights.pipeline import stage_notify
from highlights.segments import Segment
from highlights.windows import WindowScores

SEGMENTS = [Segment(12.0, 20.0, 0.93, "SoccerPenalty"), Segment(75.5, 81.0, 0.71, "SoccerPenalty")]
CLIPS = [
    ("clip-001.mp4", "https://example.org/clips/clip-001.mp4?sig=a&x=1"),
    ("clip-002.mp4", "https://example.org/clips/clip-002.mp4?sig=b&x=2"),
]
REPORT = "https://example.org/report.html"


def notification(match: str = "final.mp4") -> Notification:
    return build_notification(
        match,
        SEGMENTS,
        CLIPS,
        REPORT,
        sender="highlights@example.org",
        recipients=["coach@example.org", "fan@example.org"],
    )


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


# --- the message ------------------------------------------------------------------------------


def test_subject_counts_the_highlights_of_the_match() -> None:
    assert notification().subject == "2 highlights in final.mp4"


def test_links_hold_every_clip_and_then_the_report() -> None:
    links = notification().links
    assert [url for _, url in links] == [CLIPS[0][1], CLIPS[1][1], REPORT]
    assert links[0][0] == "clip-001.mp4: 0:12–0:20 (8.0 s), SoccerPenalty, score 0.93"


def test_text_lists_each_highlight_with_its_link() -> None:
    text = notification().text
    assert "1. 0:12–0:20 (8.0 s), SoccerPenalty, score 0.93" in text
    assert "2. 1:15–1:21 (5.5 s), SoccerPenalty, score 0.71" in text
    assert CLIPS[1][1] in text and f"Report: {REPORT}" in text


def test_html_escapes_names_and_links() -> None:
    body = notification("<script>alert(1)</script>.mp4").html
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    assert 'href="https://example.org/clips/clip-001.mp4?sig=a&amp;x=1"' in body


def test_extra_links_such_as_the_reel_come_before_the_report() -> None:
    reel = ("reel.mp4", "https://example.org/reel.mp4")
    message = build_notification("final.mp4", SEGMENTS, CLIPS, REPORT, extra_links=[reel])
    assert message.links[-2:] == [reel, ("Report", REPORT)]
    assert "reel.mp4: https://example.org/reel.mp4" in message.text
    assert 'href="https://example.org/reel.mp4"' in message.html


def test_a_match_without_highlights_says_so() -> None:
    empty = build_notification("quiet.mp4", [], [], None, recipients=["a@example.org"])
    assert empty.subject == "0 highlights in quiet.mp4"
    assert empty.links == []


def test_clip_links_must_match_the_segments() -> None:
    with pytest.raises(ValueError, match="2 segments but 1 clip links"):
        build_notification("m.mp4", SEGMENTS, CLIPS[:1], None)


def test_someone_must_receive_it() -> None:
    with pytest.raises(ConfigError, match="mail.recipients"):
        build_notification("m.mp4", [], [], None, recipients=[])


# --- .eml file --------------------------------------------------------------------------------


def test_eml_file_is_a_multipart_alternative_mail(tmp_path: Path) -> None:
    message_id = EmlNotifier(tmp_path / "mail.eml").send(notification())
    message = parse((tmp_path / "mail.eml").read_bytes())
    assert message.get_content_type() == "multipart/alternative"
    assert message["Message-ID"] == message_id
    assert message["To"] == "coach@example.org, fan@example.org"
    assert message["Subject"] == "2 highlights in final.mp4"
    body = parts(message)
    assert list(body) == ["text/plain", "text/html"]
    assert CLIPS[0][1] in body["text/plain"]
    assert "&amp;x=1" in body["text/html"]


def test_eml_lines_end_in_crlf_as_rfc_5322_requires(tmp_path: Path) -> None:
    EmlNotifier(tmp_path / "mail.eml").send(notification())
    raw = (tmp_path / "mail.eml").read_bytes()
    assert raw.count(b"\r\n") > 10
    assert b"\n" not in raw.replace(b"\r\n", b"")


# A name Linux allows: LF, CR, vertical tab, NEL (U+0085), LINE and PARAGRAPH SEPARATOR.
HOSTILE_NAME = "final\nBcc: thief@example.net\u2028X-Injected: yes\u2029\u0085\r\x0b.mp4"
CLEAN_SUBJECT = "2 highlights in final Bcc: thief@example.net X-Injected: yes .mp4"
HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "MIME-Version", "Content-Type"}


@pytest.fixture
def hostile_video(tmp_path: Path) -> Path:
    path = tmp_path / HOSTILE_NAME
    try:
        path.write_bytes(b"")
    except OSError:
        pytest.skip("this filesystem does not allow line breaks in file names")
    return path


def assert_headers_intact(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")
    message = parse(raw)
    assert set(message.keys()) == HEADERS
    assert message["Subject"] == CLEAN_SUBJECT


def test_a_video_name_with_line_breaks_stays_inside_the_eml_subject(
    tmp_path: Path, hostile_video: Path
) -> None:
    scores = WindowScores(
        starts=np.array([0.0]),
        ends=np.array([2.0]),
        probabilities=np.array([[0.1, 0.9]]),
        classes=("OpenPlay", "SoccerPenalty"),
    )
    segments_json = write_segments_json(
        tmp_path / "segments.json", hostile_video, 90.0, SEGMENTS, scores, ["SoccerPenalty"],
        SegmentConfig(),
    )  # fmt: skip
    clips = [tmp_path / "clips" / name for name, _ in CLIPS]
    eml = tmp_path / "notification.eml"
    stage_notify(hostile_video, segments_json, clips, None, None, EmlNotifier(eml), Config())
    assert_headers_intact(eml.read_bytes())


def test_a_video_name_with_line_breaks_stays_inside_the_smtp_subject(
    smtp_server: tuple[Inbox, int], hostile_video: Path
) -> None:
    inbox, port = smtp_server
    SmtpNotifier(plain(port)).send(notification(hostile_video.name))
    [(_, recipients, raw, _)] = inbox.messages
    assert recipients == ["coach@example.org", "fan@example.org"]
    assert_headers_intact(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def test_a_video_name_with_line_breaks_stays_inside_the_ses_subject(
    ses: Any, hostile_video: Path
) -> None:
    ses.verify_email_identity(EmailAddress="alerts@highlights.example.org")
    SesNotifier(ses, "alerts@highlights.example.org").send(notification(hostile_video.name))
    [sent] = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages
    assert "thief@example.net" not in sent.destinations
    raw = sent.raw_data.encode() if isinstance(sent.raw_data, str) else sent.raw_data
    assert_headers_intact(raw)


@pytest.mark.parametrize("address", ["coach@example.org\nBcc: thief@example.net", "a@b\u2028c"])
def test_an_address_with_a_line_break_is_refused(address: str) -> None:
    hostile = build_notification("final.mp4", [], [], None, recipients=[address])
    with pytest.raises(ConfigError, match="line break"):
        email_message(hostile)


def test_sending_again_replaces_the_eml_file(tmp_path: Path) -> None:
    EmlNotifier(tmp_path / "mail.eml").send(notification("first.mp4"))
    second = EmlNotifier(tmp_path / "mail.eml").send(notification("second.mp4"))
    assert parse((tmp_path / "mail.eml").read_bytes())["Message-ID"] == second
    assert "second.mp4" in parse((tmp_path / "mail.eml").read_bytes())["Subject"]
    assert [p.name for p in tmp_path.iterdir()] == ["mail.eml"]


# --- a real SMTP server on 127.0.0.1 ----------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    messages: list[tuple[str, list[str], bytes, bool]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        encrypted = session.ssl is not None
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content, encrypted)
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"coach",
            b"s3cret",
        )
        if ok:
            self.logins.append((data.login, data.password))
        return AuthResult(success=ok, handled=False)  # on failure the server answers 535


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def tls_smtp_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=inbox.authenticate,
    )
    controller.start()
    yield inbox, port
    controller.stop()


def plain(port: int, **changes: Any) -> MailConfig:
    return MailConfig(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, **changes)


def test_smtp_delivers_the_message_to_every_recipient(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    message_id = SmtpNotifier(plain(port)).send(notification())
    [(sender, recipients, raw, _)] = inbox.messages
    assert sender == "highlights@example.org"
    assert recipients == ["coach@example.org", "fan@example.org"]
    received = parse(raw)
    assert received["Message-ID"] == message_id
    assert received["Subject"] == "2 highlights in final.mp4"
    assert list(parts(received)) == ["text/plain", "text/html"]


def test_smtp_logs_in_when_a_user_is_configured(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    SmtpNotifier(plain(port, smtp_user="coach", smtp_password="s3cret")).send(notification())
    assert inbox.logins == [(b"coach", b"s3cret")]
    assert len(inbox.messages) == 1


def test_smtp_refused_login_is_reported(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    notifier = SmtpNotifier(plain(port, smtp_user="coach", smtp_password="wrong"))
    with pytest.raises(DeliveryError, match="refused the login for 'coach'"):
        notifier.send(notification())
    assert inbox.messages == []


def test_smtp_starttls_encrypts_before_logging_in(
    tls_smtp_server: tuple[Inbox, int], certificate: tuple[Path, Path]
) -> None:
    inbox, port = tls_smtp_server
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    config = MailConfig(
        smtp_host="127.0.0.1", smtp_port=port, smtp_user="coach", smtp_password="s3cret"
    )
    SmtpNotifier(config, ssl_context=trust).send(notification())
    [(_, _, raw, encrypted)] = inbox.messages
    assert encrypted
    assert inbox.logins == [(b"coach", b"s3cret")]
    assert parse(raw)["Subject"] == "2 highlights in final.mp4"


def test_smtp_starttls_refuses_an_untrusted_certificate(tls_smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = tls_smtp_server
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{port}.*CERTIFICATE_VERIFY_FAILED"):
        SmtpNotifier(MailConfig(smtp_host="127.0.0.1", smtp_port=port)).send(notification())
    assert inbox.messages == []


def test_smtp_without_starttls_support_is_not_used_in_the_clear(
    smtp_server: tuple[Inbox, int],
) -> None:
    inbox, port = smtp_server
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        SmtpNotifier(MailConfig(smtp_host="127.0.0.1", smtp_port=port)).send(notification())
    assert inbox.messages == []


def test_an_unreachable_smtp_server_is_named() -> None:
    port = free_port()
    with pytest.raises(DeliveryError, match=f"could not send mail through 127.0.0.1:{port}"):
        SmtpNotifier(plain(port), timeout=5).send(notification())


def test_smtp_needs_a_host() -> None:
    with pytest.raises(ConfigError, match="mail.smtp_host"):
        SmtpNotifier(MailConfig())


# --- SES (moto) -------------------------------------------------------------------------------


@pytest.fixture
def ses(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ses", region_name="eu-west-1")


def test_ses_sends_the_raw_mail_from_the_verified_sender(ses: Any) -> None:
    ses.verify_email_identity(EmailAddress="alerts@highlights.example.org")
    message_id = SesNotifier(ses, "alerts@highlights.example.org").send(notification())
    [sent] = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages
    assert sent.id == message_id
    assert sent.source == "alerts@highlights.example.org"
    assert set(sent.destinations) >= {"coach@example.org", "fan@example.org"}
    received = parse(sent.raw_data.encode() if isinstance(sent.raw_data, str) else sent.raw_data)
    assert received["From"] == "alerts@highlights.example.org"
    assert received["Subject"] == "2 highlights in final.mp4"
    assert CLIPS[0][1] in parts(received)["text/plain"]


def test_ses_refusal_of_an_unverified_sender_is_reported(ses: Any) -> None:
    with pytest.raises(DeliveryError, match="SES refused mail from nobody@example.org"):
        SesNotifier(ses, "nobody@example.org").send(notification())
    assert ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].sent_messages == []
