"""Encryption at rest for provider secrets.

Secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256). The keys come
from ``BADGES_BRIDGE_SECRET_KEYS``: a list whose first entry encrypts and
every entry decrypts, so keys can be rotated (add a new key first, run
``badges_bridge_rotate_keys``, then drop the old one). Each entry is either a
Fernet key, used as it is, or any long passphrase, from which a key is derived
with scrypt. Without the setting, a key is derived from Django's
``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS`` for decryption).

Versions before the scrypt derivation derived passphrase keys with a single
SHA-256. Those keys still decrypt (after every current key), never encrypt,
and ``badges_bridge_rotate_keys`` re-encrypts what they protect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings

from badges_bridge.exceptions import ConfigurationError

#: Salt of the scrypt derivation: fixed (the passphrase is the secret) and versioned.
DERIVATION_SALT = b"badges_bridge.secrets.scrypt.v2"
#: scrypt work factor (one of the equivalent settings OWASP recommends): 16 MiB and about a fifth of a
#: second per derivation, done once per key and process.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 5
#: Label of the single SHA-256 derivation of earlier versions, kept to decrypt what they stored.
_LEGACY_LABEL = b"badges_bridge.secrets.v1:"


def is_fernet_key(material: str) -> bool:
    """Whether a configured key is a Fernet key (32 bytes, urlsafe base64) rather than a passphrase."""
    try:
        return len(base64.urlsafe_b64decode(material.encode())) == 32
    except (binascii.Error, ValueError):
        return False


@lru_cache(maxsize=32)
def derive_key(passphrase: str) -> bytes:
    """The Fernet key derived from a passphrase with scrypt (cached: derivation is deliberately slow)."""
    kdf = Scrypt(salt=DERIVATION_SALT, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))


def _fernet_for(material: str) -> Fernet:
    """The Fernet of a configured key: the key itself, or the key derived from the passphrase."""
    return Fernet(material.encode() if is_fernet_key(material) else derive_key(material))


def _legacy_fernet_for(passphrase: str) -> Fernet:
    """The Fernet that earlier versions derived from a passphrase (decryption only)."""
    digest = hashlib.sha256(_LEGACY_LABEL + passphrase.encode()).digest()
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
    """Every current key first (the first one encrypts), then the legacy derivations of the passphrases."""
    materials = key_materials()
    current = [_fernet_for(material) for material in materials]
    legacy = [_legacy_fernet_for(material) for material in materials if not is_fernet_key(material)]
    return MultiFernet(current + legacy)


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
    """Re-encrypt a secret with the newest key (it may have been encrypted with an older key or derivation)."""
    try:
        return _multi().rotate(ciphertext.encode()).decode()
    except InvalidToken as err:
        raise ConfigurationError("A stored provider secret cannot be decrypted with any configured key.") from err
