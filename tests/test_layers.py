"""dcgan's subpackages stand on the floors of `dcgan.LAYERS`: no module imports from a
subpackage beside or above its own, and no import circle exists (scripts/layers.py's
report, held here)."""

import importlib.util

from conftest import REPO

import dcgan

_spec = importlib.util.spec_from_file_location("layers", REPO / "scripts" / "layers.py")
layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layers)


def test_every_subpackage_stands_on_one_of_at_most_seven_floors():
    subpackages = {path.parent.name for path in (REPO / "dcgan").glob("*/__init__.py")}
    placed = [name for floor in dcgan.LAYERS for name in floor]
    assert sorted(placed) == sorted(subpackages)
    assert len(dcgan.LAYERS) <= 7


def test_no_import_runs_sideways_or_up_a_floor():
    assert layers.upward_imports(layers.import_graph(), dcgan.LAYERS) == []


def test_no_import_circle():
    assert layers.circles(layers.import_graph()) == []


def test_the_check_sees_an_import_up_a_floor():
    graph = {"dcgan.models.registry": {"dcgan.gan.step"}, "dcgan.gan.step": set()}
    assert layers.upward_imports(graph, dcgan.LAYERS) == [
        "dcgan.models.registry -> dcgan.gan.step"]
    assert layers.circles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
