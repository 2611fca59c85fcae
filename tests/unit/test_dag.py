"""The workload graph: inferred edges, pipelines, levels and analysis."""

from __future__ import annotations

from gxo.config.loader import load_playbook

TEXT = """
schemaVersion: "1.0.0"
name: g
workloads:
  - name: fetch
    process: { module: control:identity, params: { n: 1 } }
    register: data
  - name: gen
    process: { module: data:generate_from_list, params: { items: "{{ [data.n] }}" } }
  - name: fwd
    stream_inputs: [gen]
    process: { module: passthrough }
  - name: done
    stream_inputs: [fwd]
    process: { module: control:barrier }
  - name: report
    depends_on: [done]
    when: "_gxo.workloads.fetch.status == 'Completed'"
    process: { module: control:identity, params: {} }
"""


def graph():
    return load_playbook(text=TEXT, name="g").graph


def test_edges_of_every_kind() -> None:
    g = graph()
    assert g.edges() == [
        ("fetch", "gen", "state"),
        ("gen", "fwd", "stream"),
        ("fwd", "done", "stream"),
        ("fetch", "report", "state"),
        ("done", "report", "order"),
    ]
    assert g.state_deps["report"] == {"fetch"} and g.order_deps["report"] == {"done"}
    assert g.upstream["report"] == ("done", "fetch")
    assert g.stream_consumers["gen"] == ["fwd"]


def test_pipelines_levels_and_order() -> None:
    g = graph()
    assert [p.members for p in g.pipelines] == [["fetch"], ["gen", "fwd", "done"], ["report"]]
    pipe = g.pipelines[g.pipeline_of["fwd"]]
    assert pipe.deps == {g.pipeline_of["fetch"]} and pipe.dependents == {g.pipeline_of["report"]}
    assert g.levels() == [["fetch"], ["gen"], ["fwd"], ["done"], ["report"]]
    order = g.order()
    assert order.index("fetch") < order.index("gen") < order.index("done") < order.index("report")
    assert g.find_cycle() is None


def test_networkx_view_and_description() -> None:
    g = graph()
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == 5 and nxg.number_of_edges() == 5
    assert {d["kind"] for _, _, d in nxg.edges(data=True)} == {"state", "stream", "order"}
    lines = g.describe()
    assert (
        lines[0]
        == "5 workloads, 5 edges (2 state, 1 order, 2 stream), 5 levels, 3 scheduling units"
    )
    assert "  pipeline: gen ≈> fwd; fwd ≈> done" in lines
    assert lines[-1] == "  critical path (5): fetch -> gen -> fwd -> done -> report"
