"""Layers that point one way: the core (``attention/``, ``documents/``, ``backends/``, ``errors``,
``masks``, ``tokenizer``, ``prompt_syntax``) imports no feature, lib_regedit's modules import each
other without a cycle at module level, and the engine paths a user runs (the ``regedit`` commands, the
Python API, the WebUI script) never load the evaluation, bench or training code."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lib_regedit"
CORE = ("attention", "documents", "backends", "errors", "masks", "shape_masks", "tokenizer", "prompt_syntax")
FEATURES = ("drag", "lime", "editing", "inversion", "regions", "evaluation", "bench", "shapesworld", "webui")
LAB = ("evaluation", "bench", "shapesworld")  # evaluation, benchmarks, ShapesWorld training and data
# The engine behind ``generate``, ``drag``, ``edit`` and ``edit-regions`` (what their commands import
# when they run) and the WebUI adapters that import without the WebUI.
ENGINE = (
    "lib_regedit.cli", "lib_regedit.api", "lib_regedit.models", "lib_regedit.preview", "lib_regedit.infotext",
    "lib_regedit.generation_limits", "lib_regedit.regions.lora_files",
    "lib_regedit.drag.cli", "lib_regedit.drag.diffusers_drag", "lib_regedit.drag.region_drag",
    "lib_regedit.drag.dragbench",
    "lib_regedit.lime.cli", "lib_regedit.lime.diffusers_lime", "lib_regedit.lime.roi",
    "lib_regedit.editing.cli", "lib_regedit.editing.diffusers_edit", "lib_regedit.editing.diffusers_real",
    "lib_regedit.editing.segmenter", "lib_regedit.inversion", "lib_regedit.inversion.invert",
    "lib_regedit.inversion.null_text",
    "lib_regedit.drag.batch", "lib_regedit.lime.webui_lime", "lib_regedit.editing.webui_pair",
    "lib_regedit.editing.webui_guidance",
    "lib_regedit.backends.ldm_backend", "lib_regedit.backends.forge_backend", "lib_regedit.backends.forge_checkpoint",
    "lib_regedit.backends.ldm_checkpoint", "lib_regedit.backends.diffusers_checkpoint",
)
# ``regedit eval`` is the evaluation's own command: the one way from the CLI into the lab.
EVAL_COMMAND = ("lib_regedit.cli", "lib_regedit.evaluation.cli")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _targets(module: str, is_package: bool, node: ast.AST) -> list[str]:
    """The modules an import statement (or ``importlib.import_module("...")``) may load."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        return [target] + [f"{target}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("import_module", "__import__"):
            return [node.args[0].value]
    return []


def _imports(modules: dict[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Edges between lib_regedit modules: every import, and those that run when the module is imported
    (outside any function). A module's import of its own ancestor package is not an edge."""
    every: dict[str, set[str]] = {m: set() for m in modules}
    top: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, in_function: bool) -> None:
            for target in _targets(module, is_package, node):
                if target in modules and target != module and not module.startswith(target + "."):
                    every[module].add(target)
                    if not in_function:
                        top[module].add(target)
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for child in ast.iter_child_nodes(node):
                visit(child, inner)

        visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return every, top


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_core_imports_no_feature():
    every, _ = _imports(_modules())
    upward = sorted(f"{a} -> {b}" for a, targets in every.items() for b in targets
                    if _layer(a) in CORE and _layer(b) in FEATURES)
    assert not upward, "the core imports features (move what it needs down, or hand it in):\n" + "\n".join(upward)


def test_no_import_cycle_at_module_level():
    _, top = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in top[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in top:
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    assert not cycles, "import cycles:\n" + "\n".join(" ".join(c) for c in cycles)


def _script_modules(modules: dict[str, Path]) -> list[str]:
    """The lib_regedit modules the WebUI script (``scripts/regedit.py``) imports, lazily or not."""
    tree = ast.parse((ROOT / "scripts" / "regedit.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        for target in _targets("scripts.regedit", False, node):
            if target in modules:
                found.add(target)
    return sorted(found)


def test_no_engine_import_reaches_the_lab():
    """Every import the engine's modules make, in functions too (what a run imports later), leads to
    no evaluation, bench or training module; ``regedit eval`` is the evaluation's own command."""
    modules = _modules()
    every, _ = _imports(modules)
    every[EVAL_COMMAND[0]].discard(EVAL_COMMAND[1])
    starts = [m for m in ENGINE if m in modules] + _script_modules(modules) + \
        [m for m in modules if m.startswith("lib_regedit.webui")]
    came_from: dict[str, str | None] = {}
    todo: list[tuple[str, str | None]] = [(m, None) for m in starts]
    while todo:
        module, parent = todo.pop()
        if module in came_from:
            continue
        came_from[module] = parent
        ancestors = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        todo += [(m, module) for m in sorted(every[module]) + ancestors if m in modules]
    chains = []
    for module in sorted(m for m in came_from if _layer(m) in LAB):
        chain = [module]
        while came_from[chain[-1]] is not None:
            chain.append(came_from[chain[-1]])
        chains.append(" <- ".join(chain))
    assert not chains, "the engine reaches the lab:\n" + "\n".join(chains)


CHECK = """
import importlib, json, sys
loaded, skipped = [], []
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
        loaded.append(name)
    except ModuleNotFoundError as exc:  # a WebUI adapter that needs the WebUI's own ``modules``
        if exc.name != "modules" or not name.startswith("lib_regedit.webui."):
            raise
        skipped.append(name)
import lib_regedit.cli
lib_regedit.cli.build_parser()  # the subcommands' parsers import their modules
lab = sorted(m for m in sys.modules if m.split(".")[:2] in [["lib_regedit", p] for p in json.loads(sys.argv[2])])
print(json.dumps({"loaded": loaded, "skipped": skipped, "lab": lab}))
"""


def test_the_engine_loads_no_evaluation_bench_or_training_code():
    """In a fresh interpreter: the CLI, the API, the engine behind each command, the WebUI adapters and
    every lib_regedit module the WebUI script imports leave no evaluation, bench or training module
    in ``sys.modules``."""
    modules = _modules()
    names = list(ENGINE) + _script_modules(modules) + sorted(m for m in modules if m.startswith("lib_regedit.webui."))
    names = list(dict.fromkeys(names))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    res = subprocess.run([sys.executable, "-c", CHECK, json.dumps(names), json.dumps(LAB)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert "lib_regedit.api" in report["loaded"] and "lib_regedit.webui.session" in report["loaded"]
    assert report["lab"] == [], f"the engine loaded {report['lab']}"
