"""``vault:encrypt``: encrypt text or a file in the ansible-vault format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, ReadsUnlessDest, register
from gxo.modules.integration import _ansible_vault as vault
from gxo.modules.integration._crypto import input_bytes, register_secret
from gxo.modules.integration._files import write_atomic
from gxo.modules.system._fsutil import OctalMode


@register("vault:encrypt", layer="integration")
class VaultEncrypt(ReadsUnlessDest, Module):
    """Encrypt ``content`` or the file ``src`` as ansible-vault data (format 1.1, or 1.2 with ``vault_id``).

    The output is exactly what ``ansible-vault encrypt`` writes (AES256: PBKDF2-SHA256,
    AES-256-CTR, HMAC-SHA256), so Ansible and ``vault:decrypt`` read it. Without
    ``dest`` the summary has the ``ciphertext``; with ``dest`` it is written there
    (mode 0600 by default, atomically). Encryption uses a fresh random salt, so the
    text differs each time: when ``dest`` already decrypts, with this password, to
    the same plaintext, it is left alone (``changed: false``). The plaintext and the
    password are secrets of the run: never shown.

    Example:
        - name: seal_vars
          process:
            module: vault:encrypt
            params:
              src: group_vars/prod/secrets.yml
              dest: group_vars/prod/secrets.vault.yml
              password: "{{ secret('VAULT_PASSWORD') }}"
              vault_id: prod
    """

    class Params(ModuleParams):
        content: Any = Field(None, description="Text to encrypt (non-strings as JSON)")
        src: str | None = Field(None, min_length=1, description="File to encrypt instead")
        dest: str | None = Field(None, min_length=1, description="Write the vault file here")
        password: str = Field(..., min_length=1, description="The vault password")
        vault_id: str | None = Field(
            None, min_length=1, description="Vault id label: writes format 1.2"
        )
        mode: OctalMode = Field("0600", description="dest: permissions (quoted octal)")

        @model_validator(mode="after")
        def _one_source(self) -> VaultEncrypt.Params:
            if (self.content is None) == (self.src is None):
                raise ValueError("give exactly one of content or src")
            return self

    summary = {
        "ciphertext": "the vault text (without dest)",
        "path": "the written vault file (with dest)",
        "changed": "with dest: false when it already held this plaintext",
        "format": "1.1, or 1.2 with vault_id",
        "vault_id": "the vault id (1.2)",
    }
    path_params = ("src", "dest")

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_secret(ctx, params.password)
        plaintext = await input_bytes(ctx, params.content, params.src)
        register_secret(ctx, plaintext, data=True)
        out: dict[str, Any] = {"format": "1.2" if params.vault_id else "1.1"}
        if params.vault_id:
            out["vault_id"] = params.vault_id
        try:
            if params.dest is None:
                text = await ctx.to_thread(
                    vault.encrypt, plaintext, params.password, params.vault_id
                )
                return {**out, "ciphertext": text}
            dest = ctx.resolve_path(params.dest, param="dest")
            changed = await ctx.to_thread(
                _write, dest, plaintext, params.password, params.vault_id, int(params.mode, 8)
            )
        except vault.VaultError as exc:
            raise ctx.fail(str(exc)) from None
        except OSError as exc:
            raise ctx.fail(f"cannot write dest {params.dest}: {exc.strerror or exc}") from None
        return {**out, "path": str(dest), "changed": changed}


def _write(dest: Path, plaintext: bytes, password: str, vault_id: str | None, mode: int) -> bool:
    try:
        current = dest.read_text(encoding="utf-8")
        if vault.is_vault(current):
            old, old_id = vault.decrypt(current, password)
            same_mode = (dest.stat().st_mode & 0o7777) == mode
            if old == plaintext and old_id == vault_id and same_mode:
                return False
    except (OSError, UnicodeDecodeError, vault.VaultError):
        pass
    write_atomic(dest, vault.encrypt(plaintext, password, vault_id).encode(), mode=mode)
    return True
