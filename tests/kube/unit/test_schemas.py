"""MetaSchemas against an in-memory API: a description the generators accept becomes a MetaFlow
owned by it, which runs where it was generated; a changed spec makes a second flow and keeps the
first; a refused or hostile description gets Valid=False, a Warning Event and no flow."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from meta.generate.plugins import Plugins, load_plugins
from meta.hookspecs import Description, hookimpl
from meta.kube import metrics
from meta.kube.broker import Watches
from meta.kube.controller.reconcile import run_flow
from meta.kube.controller.schemas import (
    SchemaFeed,
    reconcile_schema,
    schema_flow_name,
    spec_digest,
)
from meta.kube.types import OperatorSettings, PodSettings
from tests.kube.unit.fakes import FakeApi, FakeKubelet

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples" / "schemas"
NS = "team"
PLUGINS = load_plugins(autoload=False)


def company() -> dict[str, Any]:
    return {
        "schema": json.loads((SAMPLES / "company.schema.json").read_text()),
        "data": json.loads((SAMPLES / "company.data.json").read_text()),
    }


def metaschema(spec: dict[str, Any], generation: int = 1, name: str = "org") -> dict[str, Any]:
    return {
        "apiVersion": "meta-orchestrator.io/v1alpha1",
        "kind": "MetaSchema",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": generation},
        "spec": spec,
    }


def settings(tmp_path: Path, seconds: float = 60.0) -> OperatorSettings:
    return OperatorSettings(
        pods=PodSettings(store_claim="store"),
        store_dir=str(tmp_path / "store"),
        data_dir=tmp_path,
        generate_seconds=seconds,
    )


def reconcile(
    api: FakeApi,
    body: dict[str, Any],
    tmp_path: Path,
    plugins: Plugins = PLUGINS,
    seconds: float = 60.0,
) -> str:
    api.schemas[(NS, body["metadata"]["name"])] = body
    return asyncio.run(reconcile_schema(api, body, settings(tmp_path, seconds), plugins))


def refusal(api: FakeApi, name: str = "org") -> tuple[dict[str, Any], dict[str, Any]]:
    status = api.schemas[(NS, name)]["status"]
    (valid,) = status["conditions"]
    (event,) = [e for e in api.events if e["type"] == "Warning"]
    assert not api.flows, "no flow for a refused description"
    assert valid["status"] == "False" and event["reason"] == "Refused"
    assert event["involvedObject"]["kind"] == "MetaSchema"
    return valid, event


def test_an_accepted_description_becomes_a_metaflow_it_owns_and_that_runs_in_its_folder(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    body = metaschema(company())
    assert reconcile(api, body, tmp_path) == "Generated"
    name = schema_flow_name("org", spec_digest(body["spec"]))
    flow = api.flows[(NS, name)]
    (owner,) = flow["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("MetaSchema", "org", "uid-org")
    annotations = flow["metadata"]["annotations"]
    assert annotations["meta-orchestrator.io/flow-name"] == "company", "units named as locally"
    assert annotations["meta-orchestrator.io/generator"] == "tree"
    assert set(flow["spec"]["files"]) == {"org.schema.json", "org.data.json"}
    assert json.loads(flow["spec"]["files"]["org.data.json"]) == body["spec"]["data"]
    assert flow["spec"]["inputs"]["data"] == {"path": "org.data.json"}
    status = api.schemas[(NS, "org")]["status"]
    assert (status["flow"], status["generator"], status["observedGeneration"]) == (name, "tree", 1)
    assert status["conditions"][0]["status"] == "True"
    assert [e["reason"] for e in api.events] == ["Generated"]

    # The flow runs: its steps start in the folder of its files, where the schema is.
    watches = Watches()
    FakeKubelet(api, watches)
    flow["metadata"]["uid"] = "uid-flow"
    ended = asyncio.run(run_flow(api, watches, flow, settings(tmp_path)))
    assert ended == "Succeeded", api.status.get("reason")
    folder = tmp_path / "store" / "uid-flow" / ".files"
    assert (folder / "org.schema.json").is_file()
    for pod in api.pods.values():
        (container,) = pod["spec"]["containers"]
        assert container["workingDir"] == str(folder)
        paths = [mount["mountPath"] for mount in container["volumeMounts"]]
        assert len(paths) == len(set(paths)), "the folder is mounted once"
    ids = [
        pod["metadata"]["annotations"]["meta-orchestrator.io/unit-id"] for pod in api.pods.values()
    ]
    assert all(unit.startswith("company/") for unit in ids)


def test_a_changed_spec_makes_a_second_flow_and_keeps_the_first(tmp_path: Path) -> None:
    api = FakeApi()
    first = metaschema(company())
    reconcile(api, first, tmp_path)
    changed = company()
    changed["data"]["name"] = "Other Co"
    second = metaschema(changed, generation=2)
    assert reconcile(api, second, tmp_path) == "Generated"
    names = {name for _, name in api.flows}
    assert names == {
        schema_flow_name("org", spec_digest(first["spec"])),
        schema_flow_name("org", spec_digest(changed)),
    }
    assert api.schemas[(NS, "org")]["status"]["flow"] == schema_flow_name(
        "org", spec_digest(changed)
    )


def test_a_generation_handled_is_left_alone_and_a_flow_made_before_is_found_not_remade(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    body = metaschema(company())
    reconcile(api, body, tmp_path)
    handled = api.schemas[(NS, "org")]
    creates = api.calls.by_verb["create"]
    assert asyncio.run(reconcile_schema(api, handled, settings(tmp_path), PLUGINS)) == "Unchanged"
    # An operator that died after creating the flow, before writing the status: found, kept.
    assert reconcile(api, metaschema(company()), tmp_path) == "Found"
    assert api.calls.by_verb["create"] == creates + 0, "no second flow, no second event"
    assert len(api.flows) == 1


def test_a_description_no_generator_accepts_is_refused_with_the_generators_reasons(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    body = metaschema({"schema": {"$schema": "https://example.com/not-a-draft", "x": 1}})
    refused = metrics.REGISTRY.get_sample_value("meta_schemas_total", {"outcome": "refused"})
    assert reconcile(api, body, tmp_path) == "Refused"
    counted = metrics.REGISTRY.get_sample_value("meta_schemas_total", {"outcome": "refused"})
    assert counted == (refused or 0) + 1
    valid, event = refusal(api)
    assert valid["message"] == event["message"]
    assert "\n" not in valid["message"]
    assert valid["message"].startswith(
        "metaschema org: /spec/schema: no generator understands this description"
    )
    assert "tmp" not in valid["message"], "faults name the spec's fields, not the private folder"


def test_files_given_as_text_keep_their_keys_order_and_their_format(tmp_path: Path) -> None:
    """The API server keeps no object's key order; a file's text keeps it (generators follow
    it: the order of a tree's children fields, of its cases), and its format."""
    schema = (SAMPLES / "company.schema.json").read_text()
    data = "kind: company\nname: Tiny\ndepartments: []\n"
    api = FakeApi()
    assert reconcile(api, metaschema({"schema": schema, "data": data}), tmp_path) == "Generated"
    (flow,) = api.flows.values()
    assert flow["spec"]["files"] == {"org.schema.json": schema, "org.data.yaml": data}
    assert flow["spec"]["inputs"]["data"] == {"path": "org.data.yaml"}


def test_a_forced_generator_must_exist_and_accept_it(tmp_path: Path) -> None:
    api = FakeApi()
    reconcile(api, metaschema({**company(), "generator": "nosuch"}), tmp_path)
    valid, _ = refusal(api)
    assert "no generator named 'nosuch'" in valid["message"]


def test_refs_outside_the_description_are_never_read(tmp_path: Path) -> None:
    (tmp_path / "secret.json").write_text('{"type": "object"}')
    for ref in ("../../secret.json", "/etc/passwd", "https://example.com/s.json"):
        api = FakeApi()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": ref}
        assert reconcile(api, metaschema({"schema": schema}), tmp_path) == "Refused"
        valid, _ = refusal(api)
        assert "metaschema org: /spec/schema/$ref: " in valid["message"], valid["message"]


def test_a_deep_description_is_refused_before_anything_recurses_over_it(tmp_path: Path) -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(5000):
        deep = {"type": "object", "properties": {"a": deep}}
    api = FakeApi()
    assert reconcile(api, metaschema({"schema": deep}), tmp_path) == "Refused"
    valid, _ = refusal(api)
    assert "/spec: nests deeper than 256 levels" in valid["message"]


def test_a_flow_too_large_for_a_metaflow_is_refused_and_names_data_path(tmp_path: Path) -> None:
    spec = company()
    spec["data"]["padding"] = "x" * (1024 * 1024)
    api = FakeApi()
    assert reconcile(api, metaschema(spec), tmp_path) == "Refused"
    valid, _ = refusal(api)
    assert valid["reason"] == "TooLarge" and "dataPath" in valid["message"]


class _Slow:
    name = "slow"

    def score(self, description: Description) -> float:
        return 1000.0

    def generate(self, description: Description) -> dict[str, Any]:
        time.sleep(30)
        raise AssertionError("stopped before")


class _SlowPlugin:
    @hookimpl
    def meta_register_generators(self, registry: Any) -> None:
        registry.register(_Slow())


def test_a_generator_past_the_time_limit_is_stopped_and_the_description_refused(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    plugins = load_plugins([_SlowPlugin()], autoload=False)
    began = time.monotonic()
    outcome = reconcile(api, metaschema(company()), tmp_path, plugins=plugins, seconds=0.5)
    assert outcome == "Refused" and time.monotonic() - began < 10
    valid, _ = refusal(api)
    assert "generating took longer than 0.5 s" in valid["message"]


def test_data_on_the_store_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    api = FakeApi()
    spec = {"schema": company()["schema"], "dataPath": "shared/company.json"}
    assert reconcile(api, metaschema(spec), tmp_path) == "Generated"
    (flow,) = api.flows.values()
    path = str(tmp_path / "store" / "shared" / "company.json")
    assert flow["spec"]["inputs"]["data"] == {"path": path}
    assert set(flow["spec"]["files"]) == {"org.schema.json"}
    api = FakeApi()
    reconcile(api, metaschema({**spec, "dataPath": "../outside.json"}), tmp_path)
    valid, _ = refusal(api)
    assert "/spec/dataPath: must be a path inside the store" in valid["message"]
    api = FakeApi()
    reconcile(api, metaschema({**company(), "dataPath": "shared/company.json"}), tmp_path)
    valid, _ = refusal(api)
    assert "give the data inline (data) or by its path (dataPath), not both" in valid["message"]


def test_an_overlay_is_read_beside_the_schema(tmp_path: Path) -> None:
    schema = json.loads((REPO / "samples" / "ci-workflow" / "github-workflows.json").read_text())
    overlay = {"/nosuch": {"maxActive": 2}}
    api = FakeApi()
    reconcile(api, metaschema({"schema": schema, "overlay": overlay}), tmp_path)
    valid, _ = refusal(api)
    assert valid["message"].startswith(
        "metaschema org: /spec/overlay/~1nosuch: '/nosuch' points at no subschema of spec.schema"
    )


def test_the_feed_hands_the_handler_the_newest_version_seen() -> None:
    async def go() -> None:
        feed = SchemaFeed()
        old, new = metaschema(company(), 1), metaschema(company(), 2)
        assert feed.latest(old) is old
        waiting = asyncio.ensure_future(feed.changed("uid-org", asyncio.Event().wait()))
        await asyncio.sleep(0)
        feed.follow("MODIFIED", new)
        await asyncio.wait_for(waiting, 1)
        assert feed.latest(old) is new, "kopf's view may lag behind the watch"
        assert feed.latest(metaschema(company(), 3))["metadata"]["generation"] == 3

    asyncio.run(go())


def test_micro_sections_of_a_generated_flow_start_their_steps_in_its_folder_too(
    tmp_path: Path,
) -> None:
    folder = REPO / "samples" / "ci-workflow"
    spec = {
        "schema": (folder / "github-workflows.json").read_text(),
        "overlay": (folder / "github-workflows.meta.yaml").read_text(),
        "data": (folder / "ci.data.yml").read_text(),
    }
    api = FakeApi()
    assert reconcile(api, metaschema(spec), tmp_path) == "Generated"
    (flow,) = api.flows.values()
    flow["metadata"]["uid"] = "uid-flow"
    watches = Watches()
    FakeKubelet(api, watches)
    asyncio.run(run_flow(api, watches, flow, settings(tmp_path)))
    briefs = [
        json.loads(next(iter(body["data"].values())))
        for (_, name), body in api.config_maps.items()
        if name.endswith("-work")
    ]
    assert briefs, "the flow has micro sections"
    files = str(tmp_path / "store" / "uid-flow" / ".files")
    assert {brief["directory"] for brief in briefs} == {files}


def test_a_watch_event_that_changes_no_spec_is_not_handled_again() -> None:
    """kopf's finalizer and our own status patch come back as MODIFIED events of the same
    generation, maybe before the status that records it: generating (or refusing, with a
    second Warning Event) again would follow."""
    feed = SchemaFeed()
    first = metaschema(company(), 1)
    assert feed.unhandled(first) is first
    feed.handled(first)
    with_finalizer = metaschema(company(), 1)
    with_finalizer["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    feed.follow("MODIFIED", with_finalizer)
    assert feed.unhandled(first) is None
    changed = metaschema(company(), 2)
    feed.follow("MODIFIED", changed)
    assert feed.unhandled(first) is changed
