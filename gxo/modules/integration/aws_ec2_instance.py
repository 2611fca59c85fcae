"""``aws:ec2_instance``: make one EC2 instance, identified by its Name tag, be in a state."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_aws import AwsParams, describe_error, open_aws_client

LIVE = ("pending", "running", "stopping", "stopped")


@register("aws:ec2_instance", layer="integration")
class AwsEc2Instance(Module):
    """Create, start, stop or terminate the EC2 instance whose ``Name`` tag is ``name``.

    ``state``: ``present`` (exists, in whatever state), ``running``, ``stopped`` or
    ``absent`` (terminated). Creating needs ``ami`` (and takes ``instance_type``,
    ``subnet_id``, ``security_group_ids``, ``key_name``, ``tags``). Tags given are set on an
    existing instance too; other tags are left alone. An existing instance of another
    ``instance_type`` is not changed (that needs a stop): a warning says so. Two live
    instances with the same Name is an error. With ``wait`` (default) the module waits
    until the instance reached the state (``wait_timeout``). Under ``--check`` it only
    reads, and says what it would do in ``actions``.

    Example:
        - name: build_box
          process:
            module: aws:ec2_instance
            params:
              name: ci-builder
              state: running
              ami: ami-0abcdef1234567890
              instance_type: t3.small
              tags: { team: ci }
          register: box
    """

    class Params(AwsParams):
        name: str = Field(..., min_length=1, max_length=255, description="Value of the Name tag")
        state: Literal["present", "running", "stopped", "absent"] = Field(
            "running", description="present, running, stopped or absent"
        )
        ami: str | None = Field(None, description="Image id to create the instance from")
        instance_type: str = Field("t3.micro", description="Instance type when creating")
        subnet_id: str | None = Field(None, description="Subnet when creating")
        security_group_ids: list[str] = Field(
            default_factory=list, description="Security groups when creating"
        )
        key_name: str | None = Field(None, description="SSH key pair name when creating")
        tags: dict[str, str] = Field(default_factory=dict, description="Tags to set")
        wait: bool = Field(True, description="Wait until the instance reached the state")
        wait_timeout: float = Field(300.0, gt=0, description="Seconds to wait at most")

    summary = {
        "instance_id": "the instance's id (None when absent)",
        "state": "its state (running, stopped, terminated ...)",
        "private_ip": "private IPv4 address",
        "public_ip": "public IPv4 address (None without one)",
        "instance_type": "instance type",
        "ami": "image id",
        "tags": "its tags",
        "actions": "what was (or would be) done: created, started, stopped, terminated, tagged",
        "changed": "true when anything was (or would be) done",
    }
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=True)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._run(ctx, params, dry=False)

    async def _run(self, ctx: ModuleContext, params: Params, *, dry: bool) -> dict[str, Any]:
        client = await open_aws_client(ctx, "ec2", params)
        warnings: list[str] = []
        try:
            return await ctx.to_thread(_converge, warnings, client, params, dry)
        except _Fail as exc:
            raise ctx.fail(str(exc)) from None
        except Exception as exc:
            raise ctx.fail(describe_error(exc, f"instance {params.name!r}")) from None
        finally:
            for line in warnings:
                ctx.log(line, level="warning")
            await ctx.to_thread(client.close)


class _Fail(Exception):
    pass


def _find(client: Any, name: str) -> dict[str, Any] | None:
    answer = client.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": list(LIVE)},
        ]
    )
    found = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
    if len(found) > 1:
        ids = ", ".join(i["InstanceId"] for i in found)
        raise _Fail(f"several live instances are named {name!r} ({ids}): resolve that by hand")
    return found[0] if found else None


def _describe(client: Any, instance_id: str) -> dict[str, Any]:
    answer = client.describe_instances(InstanceIds=[instance_id])
    return dict(answer["Reservations"][0]["Instances"][0])


def _wait(client: Any, waiter: str, instance_id: str, params: AwsEc2Instance.Params) -> None:
    if not params.wait:
        return
    delay = 0.25 if params.endpoint_url else 5.0
    client.get_waiter(waiter).wait(
        InstanceIds=[instance_id],
        WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(params.wait_timeout // delay))},
    )


def _converge(
    warnings: list[str], client: Any, params: AwsEc2Instance.Params, dry: bool
) -> dict[str, Any]:
    actions: list[str] = []
    instance = _find(client, params.name)
    if params.state == "absent":
        if instance is None:
            return _result(None, actions)
        actions.append("terminated")
        if dry:
            return _result(instance, actions, state="terminated")
        client.terminate_instances(InstanceIds=[instance["InstanceId"]])
        _wait(client, "instance_terminated", instance["InstanceId"], params)
        return _result(_describe(client, instance["InstanceId"]), actions)
    wanted_tags = {"Name": params.name, **params.tags}
    if instance is None:
        if params.ami is None:
            raise _Fail(f"no instance named {params.name!r}: creating one needs ami")
        actions.append("created")
        if params.state == "stopped":
            actions.append("stopped")
        if dry:
            return {
                **_result(
                    None, actions, state=params.state if params.state != "present" else "running"
                ),
                "instance_type": params.instance_type,
                "ami": params.ami,
                "tags": wanted_tags,
            }
        request: dict[str, Any] = {
            "ImageId": params.ami,
            "InstanceType": params.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in wanted_tags.items()],
                }
            ],
        }
        if params.subnet_id:
            request["SubnetId"] = params.subnet_id
        if params.security_group_ids:
            request["SecurityGroupIds"] = params.security_group_ids
        if params.key_name:
            request["KeyName"] = params.key_name
        created = client.run_instances(**request)["Instances"][0]
        instance_id = created["InstanceId"]
        if params.state in ("running", "stopped", "present"):
            _wait(client, "instance_running", instance_id, params)
        if params.state == "stopped":
            client.stop_instances(InstanceIds=[instance_id])
            _wait(client, "instance_stopped", instance_id, params)
        return _result(_describe(client, instance_id), actions)
    instance_id = instance["InstanceId"]
    current = instance["State"]["Name"]
    if (
        "instance_type" in params.model_fields_set
        and instance.get("InstanceType") != params.instance_type
    ):
        warnings.append(
            f"instance {instance_id} is a {instance.get('InstanceType')}, not "
            f"{params.instance_type}: not changed (changing the type needs a stop)"
        )
    have = {t["Key"]: t["Value"] for t in instance.get("Tags", []) or []}
    missing = {k: v for k, v in wanted_tags.items() if have.get(k) != v}
    if missing:
        actions.append("tagged")
        if not dry:
            client.create_tags(
                Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in missing.items()]
            )
    state = current
    if params.state == "running" and current in ("stopped", "stopping"):
        actions.append("started")
        state = "running"
        if not dry:
            if current == "stopping":
                _wait(client, "instance_stopped", instance_id, params)
            client.start_instances(InstanceIds=[instance_id])
            _wait(client, "instance_running", instance_id, params)
    elif params.state == "stopped" and current in ("pending", "running"):
        actions.append("stopped")
        state = "stopped"
        if not dry:
            if current == "pending":
                _wait(client, "instance_running", instance_id, params)
            client.stop_instances(InstanceIds=[instance_id])
            _wait(client, "instance_stopped", instance_id, params)
    if dry or not actions:
        result = _result(instance, actions, state=state)
        if dry and missing:
            result["tags"] = {**have, **missing}
        return result
    return _result(_describe(client, instance_id), actions)


def _result(
    instance: dict[str, Any] | None, actions: list[str], *, state: str | None = None
) -> dict[str, Any]:
    if instance is None:
        return {
            "instance_id": None,
            "state": state or "absent",
            "private_ip": None,
            "public_ip": None,
            "instance_type": None,
            "ami": None,
            "tags": {},
            "actions": actions,
            "changed": bool(actions),
        }
    return {
        "instance_id": instance["InstanceId"],
        "state": state or instance["State"]["Name"],
        "private_ip": instance.get("PrivateIpAddress"),
        "public_ip": instance.get("PublicIpAddress"),
        "instance_type": instance.get("InstanceType"),
        "ami": instance.get("ImageId"),
        "tags": {t["Key"]: t["Value"] for t in instance.get("Tags", []) or []},
        "actions": actions,
        "changed": bool(actions),
    }
