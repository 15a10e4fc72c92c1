"""The package's rooms and the bundles' configs keep the design docs/architecture.md describes: dependencies point
one way, one module opens bundle configs, family differences live in the family adapters, and a bundle declares each
model setting once."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from _bundle_utils import REPO

PACKAGE = REPO / "medtl_monai"
#: rooms from the bottom up: a room may import rooms below it, never above (docs/architecture.md)
ROOMS = ("utils", "io", "data", "transforms", "networks", "training", "evaluation", "bundle", "explain", "export",
         "synthetic", "experiments")
BUNDLES = ("bimcv_truncated", "two_step_swft")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _room(module: Path) -> str | None:
    parts = module.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imported_rooms(module: Path) -> set[str]:
    """Rooms a module imports, at module level or inside functions, by absolute or relative imports."""
    tree = ast.parse(module.read_text())
    package_parts = module.relative_to(REPO).with_suffix("").parts[:-1]  # e.g. ("medtl_monai", "training")
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [target] + ([f"{target}.{a.name}" for a in node.names] if len(base) == 1 else [])
            else:
                names = [node.module or ""]
        for name in names:
            parts = name.split(".")
            if parts[0] == "medtl_monai" and len(parts) > 1 and parts[1] in ROOMS:
                found.add(parts[1])
    return found


def test_every_module_lives_in_a_known_room():
    rooms = {_room(m) for m in _modules()} - {None}
    assert rooms == set(ROOMS), rooms ^ set(ROOMS)


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_room_imports_a_room_above_it(module):
    room = _room(module)
    if room is None:
        return
    above = {r for r in _imported_rooms(module) if ROOMS.index(r) > ROOMS.index(room)}
    assert not above, f"{module.relative_to(REPO)} ({room}) imports {sorted(above)}, above it"


def test_the_import_check_sees_relative_and_function_level_imports(tmp_path):
    """The check above can fail: an import of a higher room, relative or inside a function, is found."""
    probe = PACKAGE / "io" / "_architecture_probe.py"
    try:
        probe.write_text("def f():\n    from ..bundle import load_config\n    import medtl_monai.experiments.study\n")
        assert _imported_rooms(probe) == {"bundle", "experiments"}
    finally:
        probe.unlink(missing_ok=True)


def test_bundle_configs_are_parsed_in_one_module():
    users = [m.relative_to(PACKAGE).as_posix() for m in _modules()
             if re.search(r"\b(ConfigParser|ConfigWorkflow)\b", m.read_text())]
    assert users == ["bundle/config.py"], users


def test_family_differences_live_in_the_family_adapters():
    adapters = {"networks/_family.py", "networks/_resnet.py", "networks/_densenet.py"}
    offenders = []
    for module in _modules():
        name = module.relative_to(PACKAGE).as_posix()
        text = module.read_text()
        if name not in adapters and re.search(r"""["'](resnet|densenet)["']""", text):
            offenders.append(name)
    assert not offenders, offenders


def _config(bundle: str, name: str) -> dict:
    return json.loads((REPO / "bundles" / bundle / "configs" / name).read_text())


@pytest.mark.parametrize("bundle", BUNDLES)
def test_no_config_overrides_an_item_by_list_index(bundle):
    for path in (REPO / "bundles" / bundle / "configs").glob("*.json"):
        keys = json.loads(path.read_text()).keys() if path.name != "metadata.json" else []
        assert not [k for k in keys if re.search(r"#\d+(#|$)", k)], path.name


#: what inference.json must repeat to run on its own (the model zoo, MONAI Label and MONAI Deploy read it alone):
#: where the bundle and its models are, the device, and the evaluator's plumbing. No model setting is among them.
SELF_SUFFICIENCY = {"bundle_root", "ckpt_dir", "dataset_dir", "device", "amp", "num_workers", "inferer", "postprocessing",
                    "finalize"}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_json_repeats_no_setting_of_train_json(bundle):
    train, inference = _config(bundle, "train.json"), _config(bundle, "inference.json")
    repeated = {k for k in inference if k in train and inference[k] == train[k]}
    assert repeated <= SELF_SUFFICIENCY, repeated - SELF_SUFFICIENCY
    model_settings = {"arch", "spatial_dims", "in_channels", "num_classes", "cut", "strategy", "slim_after", "inflation",
                      "dropout", "weights", "image_size", "pixdim", "windows", "crop", "reader"}
    assert not model_settings & inference.keys()


def test_both_bundles_are_written_in_one_style():
    """The two training configs have the same keys in the same order (the values are each bundle's own), except the
    two-step bundle's ``step`` and the CT bundle's CT settings."""
    ct, two_step = _config("bimcv_truncated", "train.json"), _config("two_step_swft", "train.json")
    assert [k for k in ct if k not in ("pixdim", "windows", "crop")] == [k for k in two_step if k != "step"]
    assert ct["train"].keys() == two_step["train"].keys() and ct["validate"].keys() == two_step["validate"].keys()
    assert [h["_target_"] for h in ct["train"]["handlers"]] == [h["_target_"] for h in two_step["train"]["handlers"]]
    for name in ("evaluate.json", "explain.json"):
        assert _config("bimcv_truncated", name) == _config("two_step_swft", name), name
