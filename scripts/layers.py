"""How dcgan's modules import each other and how a TrainConfig travels through them.

  python scripts/layers.py            # the import report
  python scripts/layers.py --trace    # also follow `config` through a 2-step training run

The import report: every module of dcgan/, its floor (1 for a module that imports no
other dcgan module, else one above the highest floor it imports; imports inside functions
count), import circles, and imports that run from a subpackage to one on its own floor or
a higher one of `dcgan.LAYERS`.

The trace runs `training.train` on 2 steps of a tiny run and records, in call order, the
module of every dcgan function called with the run's TrainConfig (or one of its
sub-configs) among its locals; consecutive calls in one module are one visit. The
configs' own methods and properties (`self` is the config) are the config reading
itself, not a visit, and are left out. It reports
the rooms (distinct modules), how often each is entered, the climbs back up (a visit to a
module on a higher floor than the one before) and the returns (a visit to a module
already visited).
"""

import argparse
import ast
import collections
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dcgan"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The dcgan modules `path` imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif node.module in modules:
                    found.add(node.module)
    found.discard(module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def circles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return result


def floors(graph) -> dict[str, int]:
    """Each module's floor; the modules of a circle share one."""
    component_of = {module: module for module in graph}
    for component in circles(graph):
        for module in component:
            component_of[module] = component[0]
    floor = {}

    def height(module):
        key = component_of[module]
        if key not in floor:
            floor[key] = 0  # Guards a circle's own edges.
            members = [m for m in graph if component_of[m] == key]
            below = {other for m in members for other in graph[m] if component_of[other] != key}
            floor[key] = 1 + max((height(other) for other in below), default=0)
        return floor[key]

    return {module: height(module) for module in graph}


def package_of(module: str) -> str:
    """The subpackage of a module ("models" for dcgan.models.registry), or the module's
    own name for a module directly in dcgan/."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else module


def upward_imports(graph, layers) -> list[str]:
    """Imports from a subpackage to another on the same floor of `layers` (floors of
    subpackage names, bottom first) or on a higher one."""
    floor = {name: position for position, names in enumerate(layers) for name in names}
    found = []
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            here, there = package_of(module), package_of(other)
            if here != there and here in floor and there in floor and floor[there] >= floor[here]:
                found.append(f"{module} -> {other}")
    return found


def trace_config(graph_floors) -> list[str]:
    """The modules visited by `config` in a 2-step training run, in order."""
    import dataclasses
    import tempfile

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (two logical CPUs, determinism)
    import tensorflow as tf

    try:
        from dcgan import training
    except ImportError:  # The flat layout, for the figures before the subpackages.
        from dcgan import trainer as training

    with tempfile.TemporaryDirectory() as run_dir:
        config = conftest.tiny_config(run_dir, 64, 32, max_steps=2, steps_per_call=1,
                                      num_fixed_samples=4)
        carried = {id(config)} | {id(getattr(config, field.name))
                                  for field in dataclasses.fields(config)
                                  if dataclasses.is_dataclass(getattr(config, field.name))}
        visits = []

        def profile(frame, event, arg):
            if event != "call":
                return
            module = frame.f_globals.get("__name__", "")
            if id(frame.f_locals.get("self")) in carried:
                return
            if module in graph_floors and any(id(value) in carried
                                              for value in frame.f_locals.values()):
                if not visits or visits[-1] != module:
                    visits.append(module)

        sys.setprofile(profile)
        try:
            training.train(config, tf.distribute.MirroredStrategy(["/cpu:0"]))
        finally:
            sys.setprofile(None)
    return visits


def package_graph(graph) -> dict[str, set[str]]:
    """Which subpackage imports which: the module graph with each module replaced by its
    subpackage (`package_of`), self-imports dropped."""
    packages = collections.defaultdict(set)
    for module, imported in graph.items():
        here = package_of(module)
        packages[here].update(package_of(other) for other in imported)
        packages[here].discard(here)
    return dict(packages)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = import_graph()
    graph_floors = floors(graph)
    by_package = collections.Counter(package_of(module) for module in graph)
    print(f"{len(graph)} modules on {max(graph_floors.values())} floors")
    for module in sorted(graph, key=lambda m: (-graph_floors[m], m)):
        print(f"  {graph_floors[module]}  {module}")
    print("modules per package:", dict(sorted(by_package.items())))
    packages = package_graph(graph)
    package_floors = floors(packages)
    print(f"{len(packages)} packages on {max(package_floors.values())} floors:")
    for package in sorted(packages, key=lambda p: (-package_floors[p], p)):
        print(f"  {package_floors[package]}  {package} -> {sorted(packages[package]) or '-'}")
    print("circles:", circles(graph) or "none")
    import dcgan
    layers = getattr(dcgan, "LAYERS", ())
    print("imports up the layers:", upward_imports(graph, layers) or "none")
    if args.trace:
        visits = trace_config(graph_floors)

        def climbs(floor_of):
            return sum(floor_of(b) > floor_of(a) for a, b in zip(visits, visits[1:]))

        returns = sum(module in visits[:position] for position, module in enumerate(visits))
        print(f"config: {len(set(visits))} rooms, {len(visits)} visits, {returns} returns, "
              f"climbs back up {climbs(graph_floors.get)} between module floors and "
              f"{climbs(lambda module: package_floors[package_of(module)])} between "
              "package floors")
        for module, count in collections.Counter(visits).most_common():
            print(f"  entered {count}x  {module}")
        print("  path:", " -> ".join(module.removeprefix("dcgan.") for module in visits))


if __name__ == "__main__":
    main()
