"""The engine: workload graph, scheduler, workload runner, streams, events and report.

Import what you need from the submodules; this package stays import-light.
"""
