"""``gcp:gce_instance``: make one Compute Engine instance be in a state (REST, httpx)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import GcpAuthParams, api_error, gcp_token

DEFAULT_BASE_URL = "https://compute.googleapis.com"
# GCE's words for a stopped instance, and for one on its way there.
STOPPED = ("TERMINATED", "STOPPED", "SUSPENDED")
STOPPING = ("STOPPING", "SUSPENDING")


class _Fail(Exception):
    pass


@register("gcp:gce_instance", layer="integration")
class GcpGceInstance(Module):
    """Create, start, stop or delete the Compute Engine instance ``name`` in ``zone``.

    ``state``: ``present`` (exists), ``running``, ``stopped`` or ``absent``. Creating needs
    ``image`` (e.g. ``projects/debian-cloud/global/images/family/debian-12``) and takes
    ``machine_type``, ``network``, ``external_ip`` and ``labels``. Labels given are set
    on an existing instance too (others are kept); a different ``machine_type`` is
    reported, not changed. Each change waits for its zone operation (``wait_timeout``).
    Returns the instance id, status and IPs. Over the Compute Engine REST API with httpx
    (no SDK); the tests use a local HTTP server implementing the endpoints used
    (instances get/insert/start/stop/delete/setLabels, zone operations wait). Credentials
    as for ``gcp:gcs_sync``. Under ``--check`` it only reads and lists ``actions``.

    Example:
        - name: runner
          process:
            module: gcp:gce_instance
            params:
              project: my-project
              zone: europe-west1-b
              name: ci-runner
              image: projects/debian-cloud/global/images/family/debian-12
              machine_type: e2-small
              labels: { team: ci }
    """

    class Params(GcpAuthParams):
        project: str = Field(..., min_length=1, description="Project id")
        zone: str = Field(..., min_length=1, description="Zone, e.g. europe-west1-b")
        name: str = Field(
            ..., pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", description="Instance name"
        )
        state: Literal["present", "running", "stopped", "absent"] = Field(
            "running", description="present, running, stopped or absent"
        )
        image: str | None = Field(None, description="Boot image (source image URL) when creating")
        machine_type: str = Field("e2-micro", description="Machine type when creating")
        network: str = Field("global/networks/default", description="Network when creating")
        external_ip: bool = Field(True, description="Give the instance an external IP (creating)")
        labels: dict[str, str] = Field(default_factory=dict, description="Labels to set")
        base_url: str = Field(DEFAULT_BASE_URL, description="API base URL (a test server in tests)")
        timeout: Duration = Field(30.0, description="Seconds per request")
        wait_timeout: Duration = Field(300.0, description="Seconds to wait for each operation")

    summary = {
        "instance_id": "the instance's numeric id (None when absent)",
        "status": "its status (RUNNING, TERMINATED ...; ABSENT when there is none)",
        "internal_ip": "internal IP address",
        "external_ip": "external IP address (None without one)",
        "machine_type": "machine type (short name)",
        "labels": "its labels",
        "actions": "what was (or would be) done: created, started, stopped, deleted, labelled",
        "changed": "true when anything was (or would be) done",
    }
    path_params = ("credentials_file",)
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=True)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=False)

    async def _run(self, ctx: ModuleContext, params: Params, *, dry: bool) -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(timeout=params.timeout) as http:
            token = await gcp_token(ctx, params, http)
            http.headers["Authorization"] = f"Bearer {token}"
            api = _Api(http, params)
            try:
                return await _converge(ctx, api, params, dry)
            except _Fail as exc:
                raise ctx.fail(str(exc)) from None
            except httpx.HTTPError as exc:
                raise ctx.fail(
                    f"instance {params.name!r}: cannot reach {params.base_url}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None


class _Api:
    def __init__(self, http: Any, params: GcpGceInstance.Params) -> None:
        self.http = http
        self.params = params
        p, z = quote(params.project, safe=""), quote(params.zone, safe="")
        self.zone_url = f"{params.base_url.rstrip('/')}/compute/v1/projects/{p}/zones/{z}"
        self.url = f"{self.zone_url}/instances/{params.name}"

    async def get(self) -> dict[str, Any] | None:
        answer = await self.http.get(self.url)
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise _Fail(api_error(f"cannot read instance {self.params.name!r}", answer))
        return dict(answer.json())

    async def call(self, method: str, url: str, what: str, body: Any = None) -> None:
        answer = await self.http.request(method, url, json=body)
        if answer.status_code not in (200, 201, 202, 204):
            raise _Fail(api_error(f"cannot {what} instance {self.params.name!r}", answer))
        operation = answer.json() if answer.content else {}
        await self.wait(operation, what)

    async def wait(self, operation: dict[str, Any], what: str) -> None:
        deadline = time.monotonic() + self.params.wait_timeout
        while operation.get("status") != "DONE":
            if time.monotonic() > deadline:
                raise _Fail(
                    f"instance {self.params.name!r}: {what} not done after "
                    f"{self.params.wait_timeout:g}s (operation {operation.get('name')})"
                )
            name = operation.get("name")
            if not name:
                return  # no operation to follow (a server that answered synchronously)
            answer = await self.http.post(f"{self.zone_url}/operations/{name}/wait")
            if answer.status_code != 200:
                raise _Fail(api_error(f"cannot follow the {what} operation", answer))
            operation = answer.json()
            if operation.get("status") != "DONE":
                await asyncio.sleep(0.5)
        errors = (operation.get("error") or {}).get("errors") or []
        if errors:
            detail = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
            raise _Fail(f"cannot {what} instance {self.params.name!r}: {detail}")


def _short(url: str | None) -> str | None:
    return url.rsplit("/", 1)[-1] if url else url


def _result(
    instance: dict[str, Any] | None, actions: list[str], status: str | None = None
) -> dict[str, Any]:
    if instance is None:
        return {
            "instance_id": None,
            "status": status or "ABSENT",
            "internal_ip": None,
            "external_ip": None,
            "machine_type": None,
            "labels": {},
            "actions": actions,
            "changed": bool(actions),
        }
    nics = instance.get("networkInterfaces") or [{}]
    access = (nics[0].get("accessConfigs") or [{}])[0]
    return {
        "instance_id": instance.get("id"),
        "status": status or instance.get("status"),
        "internal_ip": nics[0].get("networkIP"),
        "external_ip": access.get("natIP"),
        "machine_type": _short(instance.get("machineType")),
        "labels": dict(instance.get("labels") or {}),
        "actions": actions,
        "changed": bool(actions),
    }


async def _converge(
    ctx: ModuleContext, api: _Api, params: GcpGceInstance.Params, dry: bool
) -> dict[str, Any]:
    actions: list[str] = []
    instance = await api.get()
    if params.state == "absent":
        if instance is None:
            return _result(None, actions)
        actions.append("deleted")
        if not dry:
            await api.call("DELETE", api.url, "delete")
        return _result(None, actions)
    if instance is None:
        if params.image is None:
            raise _Fail(f"no instance {params.name!r} in {params.zone}: creating one needs image")
        actions.append("created")
        if params.state == "stopped":
            actions.append("stopped")
        if dry:
            status = "TERMINATED" if params.state == "stopped" else "RUNNING"
            return {
                **_result(None, actions, status),
                "machine_type": params.machine_type,
                "labels": params.labels,
            }
        nic: dict[str, Any] = {"network": params.network}
        if params.external_ip:
            nic["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
        body = {
            "name": params.name,
            "machineType": f"zones/{params.zone}/machineTypes/{params.machine_type}",
            "disks": [
                {
                    "boot": True,
                    "autoDelete": True,
                    "initializeParams": {"sourceImage": params.image},
                }
            ],
            "networkInterfaces": [nic],
            "labels": params.labels,
        }
        await api.call("POST", api.url.rsplit("/", 1)[0], "create", body)
        if params.state == "stopped":
            await api.call("POST", f"{api.url}/stop", "stop")
        return _result(await api.get(), actions)
    if (
        "machine_type" in params.model_fields_set
        and _short(instance.get("machineType")) != params.machine_type
    ):
        ctx.log(
            f"instance {params.name!r} is a {_short(instance.get('machineType'))}, not "
            f"{params.machine_type}: not changed (changing the type needs a stop)",
            level="warning",
        )
    have = dict(instance.get("labels") or {})
    wanted = {**have, **params.labels}
    if wanted != have:
        actions.append("labelled")
        if not dry:
            change: dict[str, Any] = {
                "labels": wanted,
                "labelFingerprint": instance.get("labelFingerprint"),
            }
            await api.call("POST", f"{api.url}/setLabels", "label", change)
    status = str(instance.get("status"))
    if params.state == "running" and (status in STOPPED or status in STOPPING):
        actions.append("started")
        if not dry:
            await api.call("POST", f"{api.url}/start", "start")
        status = "RUNNING"
    elif params.state == "stopped" and status not in STOPPED:
        actions.append("stopped")
        if not dry:
            await api.call("POST", f"{api.url}/stop", "stop")
        status = "TERMINATED"
    if dry or not actions:
        result = _result(instance, actions, status)
        result["labels"] = wanted
        return result
    return _result(await api.get(), actions)
