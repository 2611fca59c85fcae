"""The ansible-vault file format, versions 1.1 and 1.2 (cipher AES256), on cryptography.

The leading underscore keeps the registry from importing this file as a module.

Format (as ansible-core's ``ansible.parsing.vault`` writes it)::

    $ANSIBLE_VAULT;1.1;AES256            (1.2: $ANSIBLE_VAULT;1.2;AES256;<vault id>)
    <hex, 80 columns>

The hex body decodes to three lines: ``hex(salt)``, ``hex(HMAC)``, ``hex(ciphertext)``.
PBKDF2-HMAC-SHA256(password, salt 32 bytes, 10000 rounds) gives 80 bytes: the AES
key (32), the HMAC-SHA256 key (32) and the CTR counter start (16). The plaintext is
PKCS#7-padded to 16 bytes and encrypted with AES-256-CTR; the HMAC covers the
ciphertext.
"""

from __future__ import annotations

import binascii
import hmac
import os
from hashlib import sha256

__all__ = ["VaultError", "decrypt", "encrypt", "is_vault", "parse_header"]

HEADER = "$ANSIBLE_VAULT"
ITERATIONS = 10000
SALT = 32


class VaultError(ValueError):
    """A malformed vault text, or a wrong password."""


def is_vault(data: bytes | str) -> bool:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text.lstrip().startswith(HEADER)


def _keys(password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    derived = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=80, salt=salt, iterations=ITERATIONS
    ).derive(password)
    return derived[:32], derived[32:64], derived[64:80]


def _ctr(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.CTR(iv))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return bytes(op.update(data) + op.finalize())


def encrypt(plaintext: bytes, password: str, vault_id: str | None = None) -> str:
    """Vault text (1.1, or 1.2 with ``vault_id``), with a trailing newline."""
    from cryptography.hazmat.primitives import padding

    if not password:
        raise VaultError("the vault password is empty")
    if vault_id is not None and (";" in vault_id or not vault_id.strip() or "\n" in vault_id):
        raise VaultError(f"invalid vault_id {vault_id!r} (no ';' or newlines)")
    salt = os.urandom(SALT)
    key, hmac_key, iv = _keys(password.encode("utf-8"), salt)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    ciphertext = _ctr(key, iv, padded, encrypt=True)
    mac = hmac.new(hmac_key, ciphertext, sha256).hexdigest().encode()
    body = b"\n".join([binascii.hexlify(salt), mac, binascii.hexlify(ciphertext)])
    hexed = binascii.hexlify(body).decode()
    header = f"{HEADER};1.2;AES256;{vault_id}" if vault_id else f"{HEADER};1.1;AES256"
    lines = [header] + [hexed[i : i + 80] for i in range(0, len(hexed), 80)]
    return "\n".join(lines) + "\n"


def parse_header(text: str) -> tuple[str, str, str | None]:
    """``(version, cipher, vault_id)`` of vault text."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    parts = first.strip().split(";")
    if len(parts) < 3 or parts[0] != HEADER:
        raise VaultError("not ansible-vault data (no $ANSIBLE_VAULT header)")
    version, cipher = parts[1].strip(), parts[2].strip()
    vault_id = parts[3].strip() if len(parts) > 3 and version == "1.2" else None
    if version not in ("1.1", "1.2"):
        raise VaultError(f"unsupported vault format version {version} (1.1 and 1.2 are)")
    if cipher != "AES256":
        raise VaultError(f"unsupported vault cipher {cipher} (AES256 is)")
    return version, cipher, vault_id


def decrypt(text: str, password: str) -> tuple[bytes, str | None]:
    """``(plaintext, vault_id)``; VaultError on malformed data or a wrong password."""
    from cryptography.hazmat.primitives import padding

    _version, _cipher, vault_id = parse_header(text)
    lines = text.strip().splitlines()
    hexed = "".join(line.strip() for line in lines[1:])
    try:
        body = binascii.unhexlify(hexed)
        salt_hex, mac_hex, cipher_hex = body.split(b"\n", 2)
        salt = binascii.unhexlify(salt_hex)
        ciphertext = binascii.unhexlify(cipher_hex.strip())
    except (binascii.Error, ValueError):
        raise VaultError("malformed vault data (the body is not the expected hex)") from None
    key, hmac_key, iv = _keys(password.encode("utf-8"), salt)
    expected = hmac.new(hmac_key, ciphertext, sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, mac_hex.strip()):
        raise VaultError("decryption failed: wrong password, or the data was modified")
    padded = _ctr(key, iv, ciphertext, encrypt=False)
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize(), vault_id
    except ValueError:
        raise VaultError("malformed vault data (bad padding)") from None
