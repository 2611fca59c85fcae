"""A small stand-in for the terraform / tofu CLI, following its machine-readable output contract.

Used by tests/modules/test_integration_terraform.py (and examples/terraform*) where the
real CLI is missing. It implements what ``terraform:run`` calls, with the same
arguments, exit codes and ``-json`` message shapes (``version``, ``planned_change``,
``apply_complete``, ``change_summary``, ``outputs``, ``diagnostic``) that Terraform
documents in "Machine-Readable UI" (internal/command/views/json):

    init [-input=false] [-no-color] [-backend-config=...] [-upgrade]
    workspace select -or-create=true NAME
    plan|apply|destroy -input=false -json [-auto-approve] [-var-file=F]...
    output -json

The "configuration" is ``main.fake.json`` in the working directory::

    {"variables": {"name": {"default": "x"}},      # no default: required
     "resources": {"terraform_data.a": "hello ${var.name}"},
     "outputs": {"greeting": {"value": "${terraform_data.a}", "sensitive": false}}}

State lives in ``.fake-tfstate.json`` (one entry per workspace); ``init`` creates
``.terraform/`` and records the backend config in it. A ``plan``/``apply`` before
``init`` fails like Terraform ("Backend initialization required"). Set
``FAKE_TF_SLEEP`` (seconds) to make apply slow (cancellation tests).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION = "1.11.4"
CONFIG = Path("main.fake.json")
STATE = Path(".fake-tfstate.json")
DOT = Path(".terraform")


def emit(kind: str, message: str, level: str = "info", **extra: Any) -> None:
    record = {
        "@level": level,
        "@message": message,
        "@module": "terraform.ui",
        "@timestamp": datetime.now(UTC).isoformat(),
        "type": kind,
        **extra,
    }
    print(json.dumps(record), flush=True)


def diagnostic(summary: str, detail: str = "") -> int:
    emit(
        "diagnostic",
        f"Error: {summary}",
        "error",
        diagnostic={"severity": "error", "summary": summary, "detail": detail},
    )
    return 1


def load_state() -> dict[str, Any]:
    if STATE.exists():
        return dict(json.loads(STATE.read_text()))
    return {"workspaces": {"default": {"resources": {}, "outputs": {}}}}


def save_state(state: dict[str, Any]) -> None:
    STATE.write_text(json.dumps(state, indent=2))


def current_workspace() -> str:
    env = os.environ.get("TF_WORKSPACE")
    if env:
        return env
    marker = DOT / "environment"
    return marker.read_text().strip() if marker.exists() else "default"


def init(args: list[str]) -> int:
    if not CONFIG.exists():
        print("Terraform initialized in an empty directory!")
        return 0
    DOT.mkdir(exist_ok=True)
    backend = [a.split("=", 1)[1] for a in args if a.startswith("-backend-config=")]
    (DOT / "backend.json").write_text(json.dumps(backend))
    print("Initializing the backend...")
    print("Terraform has been successfully initialized!")
    return 0


def workspace(args: list[str]) -> int:
    if not DOT.exists():
        print('Error: Backend initialization required, please run "terraform init"')
        return 1
    names = [a for a in args[1:] if not a.startswith("-")]
    if args[:1] != ["select"] or len(names) != 1:
        print("Usage: terraform workspace select [-or-create] NAME", file=sys.stderr)
        return 1
    name = names[0]
    state = load_state()
    if name not in state["workspaces"]:
        if "-or-create=true" not in args and "-or-create" not in args:
            print(f'Workspace "{name}" doesn\'t exist.', file=sys.stderr)
            return 1
        state["workspaces"][name] = {"resources": {}, "outputs": {}}
        save_state(state)
        print(f'Created and switched to workspace "{name}"!')
    else:
        print(f'Switched to workspace "{name}".')
    (DOT / "environment").write_text(name)
    return 0


def variables(config: dict[str, Any], args: list[str]) -> dict[str, Any] | int:
    values: dict[str, Any] = {}
    for name, spec in (config.get("variables") or {}).items():
        if "default" in spec:
            values[name] = spec["default"]
    for arg in args:
        if arg.startswith("-var-file="):
            path = Path(arg.split("=", 1)[1])
            if not path.exists():
                return diagnostic(
                    "Failed to read variables file", f"Given variables file {path} does not exist."
                )
            values.update(json.loads(path.read_text()))
    for name in config.get("variables") or {}:
        if name not in values:
            return diagnostic(
                "No value for required variable",
                f'The root module input variable "{name}" is not set, and has no default value.',
            )
    return values


def interpolate(text: Any, values: dict[str, Any], resources: dict[str, Any]) -> Any:
    if not isinstance(text, str):
        return text

    def sub(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.startswith("var."):
            return str(values[ref[4:]])
        return str(resources.get(ref, ""))

    return re.sub(r"\$\{([^}]+)\}", sub, text)


def run(command: str, args: list[str]) -> int:
    emit("version", f"Terraform {VERSION}", terraform=VERSION, ui="1.2")
    if not DOT.exists():
        return diagnostic(
            'Backend initialization required, please run "terraform init"',
            "Reason: Initial configuration of the requested backend.",
        )
    if command in ("apply", "destroy") and "-auto-approve" not in args:
        return diagnostic("No value for required variable", "apply needs approval")
    config = json.loads(CONFIG.read_text())
    values = variables(config, args)
    if isinstance(values, int):
        return values
    state = load_state()
    ws = state["workspaces"].setdefault(current_workspace(), {"resources": {}, "outputs": {}})
    have: dict[str, Any] = ws["resources"]
    want = (
        {}
        if command == "destroy"
        else {
            addr: interpolate(v, values, {}) for addr, v in (config.get("resources") or {}).items()
        }
    )
    add = [a for a in want if a not in have]
    change = [a for a in want if a in have and have[a] != want[a]]
    remove = [a for a in have if a not in want]
    for addr, action in [
        *((a, "create") for a in add),
        *((a, "update") for a in change),
        *((a, "delete") for a in remove),
    ]:
        emit(
            "planned_change",
            f"{addr}: Plan to {action}",
            change={"resource": {"addr": addr, "resource": addr}, "action": action},
        )
    operation = "plan" if command == "plan" else ("destroy" if command == "destroy" else "apply")
    counts = {
        "add": len(add),
        "change": len(change),
        "import": 0,
        "remove": len(remove),
        "operation": operation,
    }
    if command == "plan":
        verb = "Plan:"
    else:
        time.sleep(float(os.environ.get("FAKE_TF_SLEEP", "0")))
        for addr in [*add, *change]:
            have[addr] = want[addr]
            emit(
                "apply_complete",
                f"{addr}: Creation complete after 0s",
                hook={"resource": {"addr": addr}},
            )
        for addr in remove:
            del have[addr]
            emit(
                "apply_complete",
                f"{addr}: Destruction complete after 0s",
                hook={"resource": {"addr": addr}},
            )
        outputs = {}
        if command != "destroy":
            for name, spec in (config.get("outputs") or {}).items():
                outputs[name] = {
                    "sensitive": bool(spec.get("sensitive")),
                    "value": interpolate(spec.get("value"), values, have),
                }
        ws["outputs"] = outputs
        save_state(state)
        verb = (
            "Destroy complete! Resources:" if command == "destroy" else "Apply complete! Resources:"
        )
    if command == "plan":
        message = f"{verb} {len(add)} to add, {len(change)} to change, {len(remove)} to destroy."
    elif command == "destroy":
        message = f"{verb} {len(remove)} destroyed."
    else:
        message = f"{verb} {len(add)} added, {len(change)} changed, {len(remove)} destroyed."
    emit("change_summary", message, changes=counts)
    return 0


def output(args: list[str]) -> int:
    if "-json" not in args:
        print("fake terraform: only output -json is implemented", file=sys.stderr)
        return 1
    state = load_state()
    ws = state["workspaces"].get(current_workspace(), {"outputs": {}})
    print(json.dumps({n: {**o, "type": "string"} for n, o in ws["outputs"].items()}, indent=2))
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print("Usage: terraform [global options] <subcommand> [args]", file=sys.stderr)
        return 127
    command, args = argv[0], argv[1:]
    if command == "version":
        print(
            json.dumps({"terraform_version": VERSION})
            if "-json" in args
            else f"Terraform v{VERSION}"
        )
        return 0
    if command == "init":
        return init(args)
    if command == "workspace":
        return workspace(args)
    if command in ("plan", "apply", "destroy"):
        return run(command, args)
    if command == "output":
        return output(args)
    print(f'Terraform has no command named "{command}".', file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
