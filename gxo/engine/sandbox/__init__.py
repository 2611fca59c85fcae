"""Workload sandboxing (``security_context``): see docs/sandbox.md.

- :mod:`.host`: what this host can enforce (load-time, fail closed).
- :mod:`.parent`: :func:`~.parent.perform_sandboxed`, the engine side: spawns the child,
  relays params, records, logs, summary and errors as JSON lines.
- :mod:`.__main__` (``python -m gxo.engine.sandbox``): the child; :mod:`.confine` sets up
  namespaces, mounts, cgroups, rlimits, capabilities, no_new_privs and seccomp.

Import-light: nothing here is imported unless a workload has a security_context.
"""
