"""Delivery to the outside: email over SMTP (smtplib) and admin alerts to a Slack-compatible
webhook (httpx). Both raise `DeliveryError` with a message fit for the outbox's `last_error`
(never a password or the webhook URL, which is a secret too).

SMTP_URL forms:
- `smtp://host:25` (plain), `smtp://user:pass@host:587?starttls=true` (STARTTLS),
- `smtps://user:pass@host:465` (TLS from the first byte).
User and password are URL-decoded (`%40` for `@`). `?timeout=10` sets the socket timeout.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from ..ports.notify import DeliveryError, PartialDelivery

_TRUE = {"1", "true", "yes", "on"}


class InvalidSmtpUrl(ValueError):
    """SMTP_URL cannot be used; the message says how to write it."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    @classmethod
    def parse(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps"):
            raise InvalidSmtpUrl(f"SMTP_URL must start with smtp:// or smtps://, not "
                                 f"{parts.scheme or '(nothing)'}:// (e.g. "
                                 "smtp://user:password@mail.example.com:587?starttls=true)")
        if not parts.hostname:
            raise InvalidSmtpUrl("SMTP_URL names no host (e.g. smtp://mail.example.com:25)")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps"
        starttls = query.get("starttls", "").lower() in _TRUE
        if tls and starttls:
            raise InvalidSmtpUrl("SMTP_URL: smtps:// is TLS already; drop ?starttls=true")
        try:
            port = parts.port or (465 if tls else 25)
            timeout = float(query.get("timeout", "10"))
        except ValueError as error:
            raise InvalidSmtpUrl(f"SMTP_URL: {error}") from None
        return cls(host=parts.hostname, port=port, tls=tls, starttls=starttls,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   timeout=timeout)


def check_address(text: str, what: str) -> str:
    """A bare address from `Name <a@b>` or `a@b`; ValueError naming `what` otherwise."""
    _name, address = parseaddr(text)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ValueError(f"{what}: {text!r} is not an email address")
    return address


class SmtpMailer:
    """Sends one message per call, on a connection of its own (senders run in several threads;
    the volume of billing email does not pay for pooling)."""

    def __init__(self, config: SmtpConfig, sender: str) -> None:
        check_address(sender, "EMAIL_FROM")
        self.config = config
        self.sender = sender

    def message(self, to: Sequence[str], subject: str, text: str,
                html: str | None) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        domain = check_address(self.sender, "EMAIL_FROM").rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
        return message

    def send(self, to: Sequence[str], subject: str, text: str, html: str | None = None) -> None:
        recipients = [check_address(address, "recipient") for address in to]
        if not recipients:
            raise DeliveryError("no recipient")
        message = self.message(to, subject, text, html)
        config = self.config
        try:
            smtp: smtplib.SMTP
            if config.tls:
                smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            with smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.username:
                    smtp.login(config.username, config.password or "")
                refused = smtp.send_message(message, from_addr=_envelope(self.sender),
                                            to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryError(f"SMTP server refused every recipient: "
                                f"{_refusals(error.recipients)}") from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"SMTP {error.smtp_code}: {_text(error.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"SMTP {config.host}:{config.port} unreachable: "
                                f"{type(error).__name__}: {error}") from None
        if refused:
            # Some recipients got it: retrying would send it to those twice. Say who did not.
            raise PartialDelivery(f"SMTP server refused {_refusals(refused)}")


def _envelope(sender: str) -> str:
    return Address(addr_spec=check_address(sender, "EMAIL_FROM")).addr_spec


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address} ({code} {_text(reason)})"
                     for address, (code, reason) in refused.items())


class AlertWebhook:
    """Posts `{"text": ...}` to a Slack-compatible incoming webhook (Slack, Mattermost, ...)."""

    def __init__(self, url: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.transport = transport

    def post(self, text: str) -> None:
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.post(self.url, json={"text": text})
        except httpx.HTTPError as error:
            # The URL is a secret: name the host only.
            raise DeliveryError(f"alert webhook ({urlsplit(self.url).hostname}) unreachable: "
                                f"{type(error).__name__}") from None
        if response.status_code >= 300:
            raise DeliveryError(f"alert webhook answered {response.status_code}: "
                                f"{response.text[:200]}")
