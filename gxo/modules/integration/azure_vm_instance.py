"""``azure:vm_instance``: make one Azure virtual machine be in a state (azure-mgmt-compute)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._cloud_sync import StaticToken, azure_error, load_libraries

DEFAULT_BASE_URL = "https://management.azure.com"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"


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
    of its first network interface. Through the official client libraries,
    azure-mgmt-compute and azure-mgmt-network (their asyncio clients; imported when the
    module runs). Credentials: ``token`` (or ``$AZURE_ACCESS_TOKEN``), or a service
    principal (``tenant_id``, ``client_id``, ``client_secret``; azure-identity, at
    ``login_url``), else azure-identity's DefaultAzureCredential (environment, workload or
    managed identity, Azure CLI ...). ``ca_file`` trusts a private CA (a proxy, a test
    server). No Azure Resource Manager emulator exists: the tests run the client
    libraries against a local HTTPS stand-in on loopback implementing the endpoints used
    (virtualMachines get / createOrUpdate / update / start / deallocate / delete with
    their ``Azure-AsyncOperation`` polling, networkInterfaces and publicIPAddresses get,
    the service principal's token request). Under ``--check`` it only reads and lists
    ``actions``.

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
        ca_file: str | None = Field(
            None, description="PEM file of CA certificates to verify base_url and login_url"
        )
        timeout: Duration = Field(30.0, description="Seconds per request")
        wait_timeout: Duration = Field(600.0, description="Seconds to wait for each operation")
        poll_interval: Duration = Field(
            5.0,
            gt=0,
            description="Seconds between polls of an operation when Azure names no Retry-After",
        )

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
    path_params = ("ca_file",)
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=True)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=False)

    async def _run(self, ctx: ModuleContext, params: Params, *, dry: bool) -> dict[str, Any]:
        await load_libraries(
            ctx,
            "azure-mgmt-compute azure-mgmt-network azure-identity aiohttp",
            "aiohttp",
            "azure.core.exceptions",
            "azure.identity.aio",
            "azure.mgmt.core.tools",
            "azure.mgmt.compute.aio",
            "azure.mgmt.network.aio",
        )
        from azure.core.exceptions import AzureError

        for value in (params.token, params.client_secret, params.admin_password):
            if value:
                ctx.run.secrets.add(value)
        verify: Any = True
        if params.ca_file:
            path = ctx.resolve_path(params.ca_file, param="ca_file")
            if not await ctx.to_thread(path.is_file):
                raise ctx.fail(f"param ca_file: {path} is not a file")
            verify = str(path)
        credential = _credential(ctx, params, verify)
        try:
            arm = _Arm(credential, params, verify)
        except (AzureError, ValueError) as exc:
            await credential.close()
            raise ctx.fail(ctx.redact(azure_error(f"VM {params.name!r}", exc))) from None
        try:
            return await _converge(ctx, arm, params, dry)
        except _Fail as exc:
            raise ctx.fail(ctx.redact(str(exc))) from None
        except AzureError as exc:
            reason = ctx.redact(azure_error(f"VM {params.name!r}", exc))
            raise ctx.fail(reason) from None
        finally:
            await arm.close()


def _credential(ctx: ModuleContext, params: AzureVmInstance.Params, verify: Any) -> Any:
    token = params.token or (None if params.client_secret else os.environ.get("AZURE_ACCESS_TOKEN"))
    if token:
        ctx.run.secrets.add(token)
        return StaticToken(token)
    if params.client_secret:
        from azure.identity.aio import ClientSecretCredential

        try:
            return ClientSecretCredential(
                params.tenant_id or "",
                params.client_id or "",
                params.client_secret,
                authority=params.login_url.rstrip("/"),
                connection_verify=verify,
            )
        except ValueError as exc:  # an authority that is not https, a malformed tenant id
            raise ctx.fail(f"service principal: {exc}") from None
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(connection_verify=verify)


def _parts(resource_id: str) -> dict[str, str]:
    from azure.mgmt.core.tools import parse_resource_id

    return dict(parse_resource_id(resource_id))


class _Arm:
    def __init__(self, credential: Any, params: AzureVmInstance.Params, verify: Any) -> None:
        from azure.mgmt.compute.aio import ComputeManagementClient

        self.credential = credential
        self.params = params
        self.verify = verify
        self.base = params.base_url.rstrip("/")
        self.compute = ComputeManagementClient(
            credential, params.subscription_id, base_url=self.base, **self.transport()
        )
        self.network: dict[str, Any] = {}
        self.group = params.resource_group

    def transport(self) -> dict[str, Any]:
        """Per-request timeouts and the CA bundle, for azure-core's aiohttp transport."""
        return {
            "connection_verify": self.verify,
            "connection_timeout": self.params.timeout,
            "read_timeout": self.params.timeout,
            "retry_total": 3,  # transient failures (the library's default: 10)
        }

    async def close(self) -> None:
        await self.compute.close()
        for client in self.network.values():
            await client.close()
        await self.credential.close()

    async def get(self) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            vm = await self.compute.virtual_machines.get(
                self.group, self.params.name, expand="instanceView"
            )
        except ResourceNotFoundError:
            return None
        except _errors() as exc:
            raise _Fail(azure_error(f"cannot read VM {self.params.name!r}", exc)) from None
        return dict(vm.as_dict())

    async def call(self, what: str, method: str, *args: Any) -> None:
        """Start a long-running operation and wait (``wait_timeout``) until it is done."""
        begin = getattr(self.compute.virtual_machines, method)
        try:
            poller = await begin(
                self.group, self.params.name, *args, polling_interval=self.params.poll_interval
            )
            async with asyncio.timeout(self.params.wait_timeout):
                await poller.result()
        except TimeoutError:
            raise _Fail(
                f"VM {self.params.name!r}: {what} not done after {self.params.wait_timeout:g}s"
            ) from None
        except _errors() as exc:
            raise _Fail(azure_error(f"cannot {what} VM {self.params.name!r}", exc)) from None

    def _network(self, subscription: str) -> Any:
        from azure.mgmt.network.aio import NetworkManagementClient

        if subscription not in self.network:
            self.network[subscription] = NetworkManagementClient(
                self.credential, subscription, base_url=self.base, **self.transport()
            )
        return self.network[subscription]

    async def ips(self, vm: dict[str, Any]) -> tuple[str | None, str | None]:
        nics = ((vm.get("properties") or {}).get("networkProfile") or {}).get(
            "networkInterfaces"
        ) or []
        if not nics or not nics[0].get("id"):
            return None, None
        try:
            ref = _parts(nics[0]["id"])
            client = self._network(ref.get("subscription", self.params.subscription_id))
            nic = await client.network_interfaces.get(ref["resource_group"], ref["name"])
            configs = nic.as_dict().get("properties", {}).get("ipConfigurations") or [{}]
            props = configs[0].get("properties") or {}
            private = props.get("privateIPAddress")
            public_id = (props.get("publicIPAddress") or {}).get("id")
            public = None
            if public_id:
                ref = _parts(public_id)
                client = self._network(ref.get("subscription", self.params.subscription_id))
                pip = await client.public_ip_addresses.get(ref["resource_group"], ref["name"])
                public = (pip.as_dict().get("properties") or {}).get("ipAddress")
        except (*_errors(), KeyError, ValueError):
            return None, None  # the addresses are informative: the VM's state is what counts
        return private, public


def _errors() -> tuple[type[BaseException], ...]:
    from azure.core.exceptions import AzureError

    return (AzureError,)


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
            await arm.call("delete", "begin_delete")
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
        await arm.call("create", "begin_create_or_update", body)
        if params.state == "stopped":
            await arm.call("deallocate", "begin_deallocate")
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
            await arm.call("tag", "begin_update", {"tags": wanted})
    power = _power(vm)
    if params.state == "running" and power not in ("running", "starting"):
        actions.append("started")
        if not dry:
            await arm.call("start", "begin_start")
        power = "running"
    elif params.state == "stopped" and power not in ("deallocated", "deallocating"):
        actions.append("deallocated")
        if not dry:
            await arm.call("deallocate", "begin_deallocate")
        power = "deallocated"
    if dry or not actions:
        out = await _result(arm, vm, actions, power)
        out["tags"] = wanted
        return out
    return await _result(arm, await arm.get(), actions)
