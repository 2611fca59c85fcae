"""Registration validates at import time: bad modules fail loudly, before any run."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from gxo.errors import RegistryError
from gxo.modules.base import REGISTRY, FreeParams, Module, ModuleParams, register


def test_duplicate_name_or_alias_fails_at_registration() -> None:
    # Even before the built-in's file is imported (lazy loading), its name is taken.
    with pytest.raises(
        RegistryError,
        match=r"module name 'exec' is already registered by built-in gxo\.modules\.system\.exec",
    ):

        @register("exec", layer="system")
        class Again(Module):
            async def perform(self, ctx: Any, params: Any) -> dict:
                return {}

    with pytest.raises(RegistryError, match="'tests:twice' is already registered by test_registry"):
        for _ in range(2):

            @register("tests:twice", layer="test")
            class Twice(Module):
                async def perform(self, ctx: Any, params: Any) -> dict:
                    return {}

    with pytest.raises(RegistryError, match="'generate:from_list' is already registered"):

        @register("tests:dup_alias", layer="test", aliases=("generate:from_list",))
        class Alias(Module):
            async def perform(self, ctx: Any, params: Any) -> dict:
                return {}


@pytest.mark.parametrize(
    ("name", "layer", "message"),
    [
        ("Bad Name", "system", "invalid module name 'Bad Name'"),
        ("tests:ok_name", "nowhere", "unknown layer 'nowhere'"),
    ],
)
def test_bad_names_and_layers(name: str, layer: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):

        @register(name, layer=layer)
        class M(Module):
            async def perform(self, ctx: Any, params: Any) -> dict:
                return {}


def test_perform_must_be_async_with_the_right_signature() -> None:
    with pytest.raises(RegistryError, match="perform must be 'async def'"):

        @register("tests:sync_perform", layer="test")
        class Sync(Module):
            def perform(self, ctx: Any, params: Any) -> dict:  # type: ignore[override]
                return {}

    with pytest.raises(RegistryError, match=r"signature \(self, ctx, params\)"):

        @register("tests:bad_signature", layer="test")
        class Sig(Module):
            async def perform(self, context: Any) -> dict:  # type: ignore[override]
                return {}

    with pytest.raises(RegistryError, match="must define 'async def perform"):

        @register("tests:no_perform", layer="test")
        class Nothing(Module):
            pass


def test_params_must_forbid_extra_keys_and_describe_every_field() -> None:
    class Loose(BaseModel):
        model_config = ConfigDict(extra="ignore")

    with pytest.raises(RegistryError, match="Params must forbid unknown keys"):

        @register("tests:loose", layer="test")
        class L(Module):
            Params = Loose

            async def perform(self, ctx: Any, params: Any) -> dict:
                return {}

    with pytest.raises(RegistryError, match="param 'x' needs a description"):

        @register("tests:undocumented", layer="test")
        class U(Module):
            class Params(ModuleParams):
                x: int = 1

            async def perform(self, ctx: Any, params: Any) -> dict:
                return {}

    with pytest.raises(RegistryError, match=r"must subclass gxo\.modules\.Module"):
        register("tests:not_a_module", layer="test")(object)  # type: ignore[arg-type]


def test_free_params_and_raw_templates_are_declared() -> None:
    @register("tests:free_ok", layer="test")
    class Free(Module):
        """Takes anything.

        Example:
            process: { module: "tests:free_ok", params: { anything: 1 } }
        """

        Params = FreeParams

        async def perform(self, ctx: Any, params: Any) -> dict:
            return {}

    spec = REGISTRY.get("tests:free_ok")
    assert spec.synopsis == "Takes anything."
    assert spec.example.startswith("process:")
    assert REGISTRY.get("control:assert").raw_paths == {"condition"}
    assert REGISTRY.get("control:assert").is_raw("condition")
    assert not REGISTRY.get("exec").is_raw("command")


def test_unknown_names_resolve_to_none_with_suggestions() -> None:
    assert REGISTRY.resolve("no:such") == (None, None)
    assert REGISTRY.suggest("exex") == ["exec"]
    spec, warning = REGISTRY.resolve("stream:join")
    assert (
        spec.name == "data:join"
        and warning == "module name 'stream:join' is deprecated: use 'data:join'"
    )


def test_every_builtin_module_is_documented() -> None:
    for spec in REGISTRY.all():
        if spec.name.startswith("tests:"):
            continue
        assert spec.synopsis, spec.name
        assert spec.example, spec.name
        for field in spec.params_model.model_fields.values():
            assert field.description, spec.name


def test_field_helper_keeps_descriptions() -> None:
    class P(ModuleParams):
        a: int = Field(1, description="an int")

    assert P.model_fields["a"].description == "an int"
