"""``vault:decrypt``: decrypt ansible-vault data (formats 1.1 and 1.2)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, ReadsUnlessDest, register
from gxo.modules.integration import _ansible_vault as vault
from gxo.modules.integration._crypto import input_bytes, register_secret
from gxo.modules.integration._files import write_atomic
from gxo.modules.system._fsutil import OctalMode
from gxo.template.secrets import SecretStr


@register("vault:decrypt", layer="integration")
class VaultDecrypt(ReadsUnlessDest, Module):
    """Decrypt ansible-vault data from ``content`` or the file ``src``.

    Reads what ``ansible-vault encrypt`` (or ``vault:encrypt``) wrote, formats 1.1
    and 1.2 (AES256), including an indented inline ``!vault |`` value. The
    plaintext is a secret of the run: it is registered for redaction, so the
    summary's ``plaintext`` shows as ``[REDACTED]`` in reports and logs; write it
    to ``dest`` (mode 0600 by default, atomically; ``changed: false`` when the file
    already holds it) to use it. A wrong password or modified data fails the
    workload ("decryption failed").

    Example:
        - name: unseal_vars
          process:
            module: vault:decrypt
            params:
              src: group_vars/prod/secrets.vault.yml
              dest: out/secrets.yml
              password: "{{ secret('VAULT_PASSWORD') }}"
    """

    class Params(ModuleParams):
        content: str | None = Field(None, description="Vault text to decrypt")
        src: str | None = Field(None, min_length=1, description="Vault file to decrypt instead")
        dest: str | None = Field(None, min_length=1, description="Write the plaintext here")
        password: str = Field(..., min_length=1, description="The vault password")
        mode: OctalMode = Field("0600", description="dest: permissions (quoted octal)")

        @model_validator(mode="after")
        def _one_source(self) -> VaultDecrypt.Params:
            if (self.content is None) == (self.src is None):
                raise ValueError("give exactly one of content or src")
            return self

    summary = {
        "plaintext": "the decrypted text (without dest) — a secret, redacted in outputs",
        "vault_id": "the vault id of a 1.2 file (else null)",
        "format": "1.1 or 1.2",
        "path": "the written file (with dest)",
        "changed": "with dest: false when it already held the plaintext",
        "size": "plaintext size in bytes",
    }
    path_params = ("src", "dest")

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_secret(ctx, params.password)
        raw = await input_bytes(ctx, params.content, params.src)
        try:
            text = raw.decode("utf-8")
            version, _cipher, _id = vault.parse_header(text)
            plaintext, vault_id = await ctx.to_thread(vault.decrypt, text, params.password)
        except UnicodeDecodeError:
            raise ctx.fail("not ansible-vault data (not text)") from None
        except vault.VaultError as exc:
            raise ctx.fail(str(exc)) from None
        register_secret(ctx, plaintext, data=True)
        out: dict[str, Any] = {"format": version, "vault_id": vault_id, "size": len(plaintext)}
        if params.dest is not None:
            dest = ctx.resolve_path(params.dest, param="dest")
            try:
                changed = await ctx.to_thread(
                    write_atomic, dest, plaintext, mode=int(params.mode, 8)
                )
            except OSError as exc:
                raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
            return {**out, "path": str(dest), "changed": changed}
        try:
            out["plaintext"] = SecretStr(plaintext.decode("utf-8"))
        except UnicodeDecodeError:
            raise ctx.fail(
                "the plaintext is not utf-8 text: use dest to write it to a file"
            ) from None
        return out
