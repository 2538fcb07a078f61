"""Secrets a development or sandbox set-up makes for itself and keeps beside its database
(`var/meterbill.secrets.json`), so that the server, every CLI command and a restarted server
agree on them: the API token and the billing-portal link key."""

from __future__ import annotations

import secrets
from datetime import timedelta

from ..adapters.local_secrets import LocalSecrets
from ..config import Settings
from ..services.notifications.portal_links import PortalLinks, derive_secret

SECRETS_SUFFIX = ".secrets.json"
API_TOKEN_SECRET = "api_token"
LINK_KEY_SECRET = "link_signing_key"


def local_secrets(settings: Settings) -> LocalSecrets:
    """The secrets file beside the database."""
    return LocalSecrets(settings.state_file(SECRETS_SUFFIX))


def keeps_local_secrets(settings: Settings) -> bool:
    """Development and sandbox set-ups make the secrets they lack and keep them locally."""
    return settings.environment == "development" or settings.mode == "sandbox"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def portal_links(settings: Settings) -> PortalLinks:
    """Signed billing-portal links: LINK_SIGNING_SECRET, else derived from the API token, else
    (development, sandbox) a key kept in the local secrets file, so that a link made by any
    command works in the server."""
    secret = settings.link_signing_secret or settings.meterbill_api_token
    ttl = timedelta(days=settings.portal_link_days)
    if secret is not None:
        return PortalLinks(derive_secret(secret.get_secret_value()), settings.public_url, ttl)
    if keeps_local_secrets(settings):
        kept = local_secrets(settings).get_or_create(LINK_KEY_SECRET, new_secret)
        return PortalLinks(derive_secret(kept), settings.public_url, ttl)
    # Production without either secret (the API itself refuses to start): links made now stop
    # working when the process ends, which is said when one is made.
    return PortalLinks(secrets.token_bytes(32), settings.public_url, ttl, ephemeral=True)
