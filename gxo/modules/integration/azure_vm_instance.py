"""``azure:vm_instance``: make one Azure virtual machine be in a state (ARM REST, httpx)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._cloud_sync import api_error

DEFAULT_BASE_URL = "https://management.azure.com"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
API_VERSION = "2023-09-01"
NETWORK_API_VERSION = "2023-09-01"


class _Fail(Exception):
    pass


@register("azure:vm_instance", layer="integration")
class AzureVmInstance(Module):
    """Create, start, deallocate or delete the Azure VM ``name`` in ``resource_group``.

    ``state``: ``present`` (exists), ``running``, ``stopped`` (deallocated: no compute
    billed) or ``absent``. Creating needs ``location``, ``image`` (a URN
    ``publisher:offer:sku:version``, as ``az vm create`` takes), ``network_interface_id``
    and ``admin_username`` with ``ssh_public_key`` (or ``admin_password``, a secret).
    ``tags`` are merged into an existing VM's tags; a different ``vm_size`` is reported,
    not changed. Long operations are followed through their ``Azure-AsyncOperation``
    URL (``wait_timeout``). Returns the VM id, power state and the private / public IP
    of its first network interface. Over the Azure Resource Manager REST API with httpx
    (no SDK); the tests use a local HTTP server implementing the endpoints used.
    Credentials: ``token`` (or ``$AZURE_ACCESS_TOKEN``), or a service principal
    (``tenant_id``, ``client_id``, ``client_secret``) exchanged at ``login_url``.
    Under ``--check`` it only reads and lists ``actions``.

    Example:
        - name: vm
          process:
            module: azure:vm_instance
            params:
              subscription_id: 00000000-0000-0000-0000-000000000000
              resource_group: ci
              name: runner-1
              location: westeurope
              image: Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest
              network_interface_id: /subscriptions/.../networkInterfaces/runner-1-nic
              admin_username: azureuser
              ssh_public_key: "{{ ci_ssh_public_key }}"
              tenant_id: "{{ secret('AZURE_TENANT_ID') }}"
              client_id: "{{ secret('AZURE_CLIENT_ID') }}"
              client_secret: "{{ secret('AZURE_CLIENT_SECRET') }}"
    """

    class Params(ModuleParams):
        subscription_id: str = Field(..., min_length=1, description="Subscription id")
        resource_group: str = Field(..., min_length=1, description="Resource group")
        name: str = Field(..., min_length=1, max_length=64, description="VM name")
        state: Literal["present", "running", "stopped", "absent"] = Field(
            "running", description="present, running, stopped (deallocated) or absent"
        )
        location: str | None = Field(None, description="Region when creating, e.g. westeurope")
        vm_size: str = Field("Standard_B1s", description="VM size when creating")
        image: str | None = Field(
            None, description="Image URN publisher:offer:sku:version when creating"
        )
        network_interface_id: str | None = Field(
            None, description="Resource id of the NIC when creating"
        )
        admin_username: str = Field("azureuser", description="Admin user when creating")
        ssh_public_key: str | None = Field(None, description="SSH public key of the admin user")
        admin_password: str | None = Field(None, description="Admin password (a secret)")
        tags: dict[str, str] = Field(default_factory=dict, description="Tags to set")
        token: str | None = Field(None, description="Bearer token (default: $AZURE_ACCESS_TOKEN)")
        tenant_id: str | None = Field(None, description="Service principal's tenant")
        client_id: str | None = Field(None, description="Service principal's application id")
        client_secret: str | None = Field(None, description="Service principal's secret")
        base_url: str = Field(DEFAULT_BASE_URL, description="ARM base URL (a test server in tests)")
        login_url: str = Field(DEFAULT_LOGIN_URL, description="Microsoft Entra login URL")
        timeout: Duration = Field(30.0, description="Seconds per request")
        wait_timeout: Duration = Field(600.0, description="Seconds to wait for each operation")

        @model_validator(mode="after")
        def _credentials(self) -> AzureVmInstance.Params:
            principal = (self.tenant_id, self.client_id, self.client_secret)
            if any(v is not None for v in principal) and not all(principal):
                raise ValueError("a service principal needs tenant_id, client_id and client_secret")
            if self.token is not None and self.client_secret is not None:
                raise ValueError("give either token or a service principal, not both")
            return self

    summary = {
        "vm_id": "the VM's unique id (None when absent)",
        "power_state": "running, deallocated, stopped ... (absent when there is none)",
        "private_ip": "private IP of the first network interface",
        "public_ip": "public IP of the first network interface (None without one)",
        "vm_size": "VM size",
        "tags": "its tags",
        "actions": "what was (or would be) done: created, started, deallocated, deleted, tagged",
        "changed": "true when anything was (or would be) done",
    }
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=True)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=False)

    async def _run(self, ctx: ModuleContext, params: Params, *, dry: bool) -> dict[str, Any]:
        import httpx

        for value in (params.token, params.client_secret, params.admin_password):
            if value:
                ctx.run.secrets.add(value)
        async with httpx.AsyncClient(timeout=params.timeout) as http:
            try:
                token = await _token(ctx, http, params)
                http.headers["Authorization"] = f"Bearer {token}"
                return await _converge(ctx, _Arm(http, params), params, dry)
            except _Fail as exc:
                raise ctx.fail(ctx.redact(str(exc))) from None
            except httpx.HTTPError as exc:
                reason = ctx.redact(f"{type(exc).__name__}: {exc}")
                raise ctx.fail(f"VM {params.name!r}: cannot reach Azure: {reason}") from None


async def _token(ctx: ModuleContext, http: Any, params: AzureVmInstance.Params) -> str:
    token = params.token or (None if params.client_secret else os.environ.get("AZURE_ACCESS_TOKEN"))
    if token:
        ctx.run.secrets.add(token)
        return token
    if not params.client_secret:
        raise _Fail(
            "no Azure credentials: set token (or AZURE_ACCESS_TOKEN), or tenant_id, "
            "client_id and client_secret"
        )
    url = (
        f"{params.login_url.rstrip('/')}/{quote(params.tenant_id or '', safe='')}/oauth2/v2.0/token"
    )
    answer = await http.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": params.client_id,
            "client_secret": params.client_secret,
            "scope": f"{DEFAULT_BASE_URL}/.default",
        },
    )
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 200 or not body.get("access_token"):
        detail = body.get("error_description") or body.get("error") or f"HTTP {answer.status_code}"
        raise _Fail(f"service principal login refused: {str(detail).splitlines()[0]}")
    token = str(body["access_token"])
    ctx.run.secrets.add(token)
    return token


class _Arm:
    def __init__(self, http: Any, params: AzureVmInstance.Params) -> None:
        self.http = http
        self.params = params
        self.base = params.base_url.rstrip("/")
        s, g = quote(params.subscription_id, safe=""), quote(params.resource_group, safe="")
        self.vm = (
            f"{self.base}/subscriptions/{s}/resourceGroups/{g}/providers/"
            f"Microsoft.Compute/virtualMachines/{quote(params.name, safe='')}"
        )

    async def get(self) -> dict[str, Any] | None:
        answer = await self.http.get(
            self.vm, params={"api-version": API_VERSION, "$expand": "instanceView"}
        )
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise _Fail(api_error(f"cannot read VM {self.params.name!r}", answer))
        return dict(answer.json())

    async def call(self, method: str, url: str, what: str, body: Any = None) -> None:
        answer = await self.http.request(
            method, url, params={"api-version": API_VERSION}, json=body
        )
        if answer.status_code not in (200, 201, 202, 204):
            raise _Fail(api_error(f"cannot {what} VM {self.params.name!r}", answer))
        poll = answer.headers.get("Azure-AsyncOperation")
        deadline = time.monotonic() + self.params.wait_timeout
        while poll:
            state = await self.http.get(poll)
            if state.status_code != 200:
                raise _Fail(api_error(f"cannot follow the {what} operation", state))
            status = str(state.json().get("status", ""))
            if status == "Succeeded":
                return
            if status in ("Failed", "Canceled"):
                error = state.json().get("error") or {}
                raise _Fail(
                    f"cannot {what} VM {self.params.name!r}: {error.get('message') or status}"
                )
            if time.monotonic() > deadline:
                raise _Fail(
                    f"VM {self.params.name!r}: {what} not done after {self.params.wait_timeout:g}s"
                )
            await asyncio.sleep(0.5 if "127.0.0.1" not in poll else 0.05)

    async def ips(self, vm: dict[str, Any]) -> tuple[str | None, str | None]:
        nics = ((vm.get("properties") or {}).get("networkProfile") or {}).get(
            "networkInterfaces"
        ) or []
        if not nics or not nics[0].get("id"):
            return None, None
        nic = await self.http.get(
            f"{self.base}{nics[0]['id']}", params={"api-version": NETWORK_API_VERSION}
        )
        if nic.status_code != 200:
            return None, None
        configs = (nic.json().get("properties") or {}).get("ipConfigurations") or [{}]
        props = configs[0].get("properties") or {}
        private = props.get("privateIPAddress")
        public_id = (props.get("publicIPAddress") or {}).get("id")
        public = None
        if public_id:
            pip = await self.http.get(
                f"{self.base}{public_id}", params={"api-version": NETWORK_API_VERSION}
            )
            if pip.status_code == 200:
                public = (pip.json().get("properties") or {}).get("ipAddress")
        return private, public


def _power(vm: dict[str, Any]) -> str:
    statuses = ((vm.get("properties") or {}).get("instanceView") or {}).get("statuses") or []
    for status in statuses:
        code = str(status.get("code", ""))
        if code.startswith("PowerState/"):
            return code.split("/", 1)[1]
    return "unknown"


async def _result(
    arm: _Arm | None, vm: dict[str, Any] | None, actions: list[str], power: str | None = None
) -> dict[str, Any]:
    if vm is None:
        return {
            "vm_id": None,
            "power_state": power or "absent",
            "private_ip": None,
            "public_ip": None,
            "vm_size": None,
            "tags": {},
            "actions": actions,
            "changed": bool(actions),
        }
    private, public = await arm.ips(vm) if arm is not None else (None, None)
    props = vm.get("properties") or {}
    return {
        "vm_id": props.get("vmId"),
        "power_state": power or _power(vm),
        "private_ip": private,
        "public_ip": public,
        "vm_size": (props.get("hardwareProfile") or {}).get("vmSize"),
        "tags": dict(vm.get("tags") or {}),
        "actions": actions,
        "changed": bool(actions),
    }


def _create_body(params: AzureVmInstance.Params) -> dict[str, Any]:
    missing = [
        k for k in ("location", "image", "network_interface_id") if getattr(params, k) is None
    ]
    if params.ssh_public_key is None and params.admin_password is None:
        missing.append("ssh_public_key or admin_password")
    if missing:
        raise _Fail(f"no VM {params.name!r}: creating one needs {', '.join(missing)}")
    parts = (params.image or "").split(":")
    if len(parts) != 4:
        raise _Fail(f"image must be a URN publisher:offer:sku:version, got {params.image!r}")
    os_profile: dict[str, Any] = {
        "computerName": params.name,
        "adminUsername": params.admin_username,
    }
    if params.ssh_public_key is not None:
        os_profile["linuxConfiguration"] = {
            "disablePasswordAuthentication": params.admin_password is None,
            "ssh": {
                "publicKeys": [
                    {
                        "path": f"/home/{params.admin_username}/.ssh/authorized_keys",
                        "keyData": params.ssh_public_key,
                    }
                ]
            },
        }
    if params.admin_password is not None:
        os_profile["adminPassword"] = params.admin_password
    return {
        "location": params.location,
        "tags": params.tags,
        "properties": {
            "hardwareProfile": {"vmSize": params.vm_size},
            "storageProfile": {
                "imageReference": dict(
                    zip(("publisher", "offer", "sku", "version"), parts, strict=True)
                ),
                "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"},
            },
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{"id": params.network_interface_id}]},
        },
    }


async def _converge(
    ctx: ModuleContext, arm: _Arm, params: AzureVmInstance.Params, dry: bool
) -> dict[str, Any]:
    actions: list[str] = []
    vm = await arm.get()
    if params.state == "absent":
        if vm is None:
            return await _result(None, None, actions)
        actions.append("deleted")
        if not dry:
            await arm.call("DELETE", arm.vm, "delete")
        return await _result(None, None, actions)
    if vm is None:
        body = _create_body(params)
        actions.append("created")
        if params.state == "stopped":
            actions.append("deallocated")
        if dry:
            out = await _result(
                None, None, actions, "deallocated" if params.state == "stopped" else "running"
            )
            return {**out, "vm_size": params.vm_size, "tags": params.tags}
        await arm.call("PUT", arm.vm, "create", body)
        if params.state == "stopped":
            await arm.call("POST", f"{arm.vm}/deallocate", "deallocate")
        return await _result(arm, await arm.get(), actions)
    size = ((vm.get("properties") or {}).get("hardwareProfile") or {}).get("vmSize")
    if "vm_size" in params.model_fields_set and size != params.vm_size:
        ctx.log(
            f"VM {params.name!r} is a {size}, not {params.vm_size}: not changed "
            "(resizing may need a deallocation)",
            level="warning",
        )
    have = dict(vm.get("tags") or {})
    wanted = {**have, **params.tags}
    if wanted != have:
        actions.append("tagged")
        if not dry:
            await arm.call("PATCH", arm.vm, "tag", {"tags": wanted})
    power = _power(vm)
    if params.state == "running" and power not in ("running", "starting"):
        actions.append("started")
        if not dry:
            await arm.call("POST", f"{arm.vm}/start", "start")
        power = "running"
    elif params.state == "stopped" and power not in ("deallocated", "deallocating"):
        actions.append("deallocated")
        if not dry:
            await arm.call("POST", f"{arm.vm}/deallocate", "deallocate")
        power = "deallocated"
    if dry or not actions:
        out = await _result(arm, vm, actions, power)
        out["tags"] = wanted
        return out
    return await _result(arm, await arm.get(), actions)
