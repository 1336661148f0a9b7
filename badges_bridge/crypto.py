"""Encryption at rest for provider secrets.

Secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256). The keys come
from ``BADGES_BRIDGE_SECRET_KEYS``: a list whose first entry encrypts and
every entry decrypts, so keys can be rotated (add a new key first, run
``badges_bridge_rotate_keys``, then drop the old one). Each entry is either a
Fernet key or any long passphrase. Without the setting, a key is derived from
Django's ``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS`` for decryption).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from badges_bridge.exceptions import ConfigurationError

_DERIVATION_LABEL = b"badges_bridge.secrets.v1:"


def _fernet_for(material: str) -> Fernet:
    """A Fernet for a configured key: used as is when it is a Fernet key, derived otherwise."""
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return Fernet(material.encode())
    except (binascii.Error, ValueError):
        pass
    digest = hashlib.sha256(_DERIVATION_LABEL + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def key_materials() -> list[str]:
    """The configured key materials, newest (encrypting) first."""
    keys = getattr(settings, "BADGES_BRIDGE_SECRET_KEYS", None)
    if keys:
        if isinstance(keys, str):
            keys = [keys]
        return [str(key) for key in keys]
    fallbacks = list(getattr(settings, "SECRET_KEY_FALLBACKS", []) or [])
    if not settings.SECRET_KEY:
        raise ConfigurationError("Set BADGES_BRIDGE_SECRET_KEYS (or SECRET_KEY) to encrypt provider secrets.")
    return [settings.SECRET_KEY, *fallbacks]


def _multi() -> MultiFernet:
    return MultiFernet([_fernet_for(material) for material in key_materials()])


def encrypt(plaintext: str) -> str:
    """Encrypt a secret with the newest key."""
    return _multi().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt a secret with any configured key; ConfigurationError when none fits."""
    try:
        return _multi().decrypt(ciphertext.encode()).decode()
    except InvalidToken as err:
        raise ConfigurationError(
            "A stored provider secret cannot be decrypted with the configured BADGES_BRIDGE_SECRET_KEYS; "
            "was a key removed before running badges_bridge_rotate_keys?"
        ) from err


def rotate(ciphertext: str) -> str:
    """Re-encrypt a secret with the newest key (it may have been encrypted with an older one)."""
    try:
        return _multi().rotate(ciphertext.encode()).decode()
    except InvalidToken as err:
        raise ConfigurationError("A stored provider secret cannot be decrypted with any configured key.") from err
