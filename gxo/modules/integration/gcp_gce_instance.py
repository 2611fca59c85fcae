"""``gcp:gce_instance``: make one Compute Engine instance be in a state (google-cloud-compute)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from pydantic import Field

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import (
    GcpAuthParams,
    gcp_call_errors,
    gcp_credentials,
    gcp_error,
    load_libraries,
)

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
    Returns the instance id, status and IPs. Through the official client library,
    google-cloud-compute (its REST transport; imported when the module runs, its blocking
    calls in a worker thread). No Compute Engine emulator exists: the tests run the
    client library against a local HTTP stand-in on loopback implementing the endpoints
    used (instances get/insert/start/stop/delete/setLabels, zone operations wait).
    Credentials as for ``gcp:gcs_sync``. Under ``--check`` it only reads and lists
    ``actions``.

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
        await load_libraries(ctx, "google-cloud-compute", "google.cloud.compute_v1")
        credentials = await gcp_credentials(ctx, params, params.timeout)
        api = await ctx.to_thread(_Api, ctx, credentials, params)
        try:
            return await _converge(ctx, api, params, dry)
        except _Fail as exc:
            raise ctx.fail(ctx.redact(str(exc))) from None
        finally:
            await ctx.to_thread(api.close)


class _Api:
    """The calls the module makes, each run in a worker thread (the library blocks)."""

    def __init__(self, ctx: ModuleContext, credentials: Any, params: GcpGceInstance.Params) -> None:
        from google.cloud import compute_v1

        self.ctx = ctx
        self.compute = compute_v1
        self.params = params
        options = {"api_endpoint": params.base_url.rstrip("/")}
        self.instances = compute_v1.InstancesClient(credentials=credentials, client_options=options)
        self.operations = compute_v1.ZoneOperationsClient(
            credentials=credentials, client_options=options
        )
        self.where = {"project": params.project, "zone": params.zone}
        self.errors = gcp_call_errors()

    def close(self) -> None:
        self.instances.transport.close()
        self.operations.transport.close()

    async def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return await self.ctx.to_thread(fn, **kwargs, timeout=self.params.timeout)
        except self.errors as exc:
            raise _Fail(gcp_error(f"cannot {what} instance {self.params.name!r}", exc)) from None

    def _dict(self, message: Any) -> dict[str, Any]:
        return dict(
            type(message).to_dict(
                message, preserving_proto_field_name=False, use_integers_for_enums=False
            )
        )

    async def get(self) -> dict[str, Any] | None:
        from google.api_core.exceptions import NotFound

        try:
            found = await self.ctx.to_thread(
                self.instances.get,
                **self.where,
                instance=self.params.name,
                timeout=self.params.timeout,
            )
        except NotFound:
            return None
        except self.errors as exc:
            raise _Fail(gcp_error(f"cannot read instance {self.params.name!r}", exc)) from None
        return self._dict(found)

    async def insert(self, body: dict[str, Any]) -> None:
        import json

        resource = self.compute.Instance.from_json(json.dumps(body))
        op = await self._call(
            "create", self.instances.insert_unary, **self.where, instance_resource=resource
        )
        await self.wait(op, "create")

    async def delete(self) -> None:
        op = await self._call(
            "delete", self.instances.delete_unary, **self.where, instance=self.params.name
        )
        await self.wait(op, "delete")

    async def start(self) -> None:
        op = await self._call(
            "start", self.instances.start_unary, **self.where, instance=self.params.name
        )
        await self.wait(op, "start")

    async def stop(self) -> None:
        op = await self._call(
            "stop", self.instances.stop_unary, **self.where, instance=self.params.name
        )
        await self.wait(op, "stop")

    async def set_labels(self, labels: dict[str, str], fingerprint: str | None) -> None:
        change = self.compute.InstancesSetLabelsRequest(
            labels=labels, label_fingerprint=fingerprint or ""
        )
        op = await self._call(
            "label",
            self.instances.set_labels_unary,
            **self.where,
            instance=self.params.name,
            instances_set_labels_request_resource=change,
        )
        await self.wait(op, "label")

    async def wait(self, message: Any, what: str) -> None:
        operation = self._dict(message)
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
            try:
                answer = await self.ctx.to_thread(
                    self.operations.wait,
                    **self.where,
                    operation=name,
                    timeout=self.params.timeout,
                )
            except self.errors as exc:
                raise _Fail(gcp_error(f"cannot follow the {what} operation", exc)) from None
            operation = self._dict(answer)
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
            await api.delete()
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
        await api.insert(body)
        if params.state == "stopped":
            await api.stop()
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
            await api.set_labels(wanted, instance.get("labelFingerprint"))
    status = str(instance.get("status"))
    if params.state == "running" and (status in STOPPED or status in STOPPING):
        actions.append("started")
        if not dry:
            await api.start()
        status = "RUNNING"
    elif params.state == "stopped" and status not in STOPPED:
        actions.append("stopped")
        if not dry:
            await api.stop()
        status = "TERMINATED"
    if dry or not actions:
        result = _result(instance, actions, status)
        result["labels"] = wanted
        return result
    return _result(await api.get(), actions)
