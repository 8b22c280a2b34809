"""The package's imports run one way: servers, then the public face, then the
engine, then small utilities; and they form no cycle.

Read from the source (imports under ``if TYPE_CHECKING:`` do not run, so
they do not count).  A new module must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness.servers import ROOT

PACKAGE = ROOT / "aiopyramid"

#: Lowest first.  A module may import its own layer and the ones below.
LAYERS: list[set[str]] = [
    {  # small utilities
        "aiopyramid.exceptions",
        "aiopyramid._types",
        "aiopyramid._unwrap",
        "aiopyramid._slow_views",
        "aiopyramid._settings",
        "aiopyramid._collector",
        "aiopyramid._startup",
        "aiopyramid._failures",
        "aiopyramid._access_log",
        "aiopyramid._environ",
        "aiopyramid._wsgi_input",
        "aiopyramid._threadlocal",
        "aiopyramid._watchdog",
        "aiopyramid._broadcast_errors",
        "aiopyramid.websocket.exceptions",
        "aiopyramid.websocket.interface",
        "aiopyramid.websocket._sansio",
        "aiopyramid.websocket._inbox",
        "aiopyramid._sending",
        "aiopyramid.pcreate",
    },
    {"aiopyramid._greenlets"},  # the engine: its greenlets and their driver
    {"aiopyramid._bridge"},  # the engine: every way of waiting
    {  # the public face
        "aiopyramid",
        "aiopyramid.helpers",
        "aiopyramid.config",
        "aiopyramid.traversal",
        "aiopyramid.tweens",
        "aiopyramid.auth",
        "aiopyramid.testing",
        "aiopyramid.observability",
        "aiopyramid.sentry",
        "aiopyramid._addons",
        "aiopyramid._modes",
        "aiopyramid.broadcast",
        "aiopyramid._broadcast_memory",
        "aiopyramid._broadcast_redis",
        "aiopyramid._broadcast_subscription",
        "aiopyramid.websocket",
        "aiopyramid.websocket.view",
        "aiopyramid.websocket.helpers",
    },
    {  # server adapters
        "aiopyramid.asgi",
        "aiopyramid._asgi_response",
        "aiopyramid._response",
        "aiopyramid._task_response",
        "aiopyramid._asgi_http",
        "aiopyramid._asgi_websocket",
        "aiopyramid.rsgi",
        "aiopyramid._rsgi_http",
        "aiopyramid._rsgi_response",
        "aiopyramid._rsgi_websocket",
        "aiopyramid.websocket._rsgi",
        "aiopyramid.websocket._asgi",
        "aiopyramid.websocket._bridged",
        "aiopyramid.websocket.config",
        "aiopyramid.websocket.config._base",
        "aiopyramid.websocket.config._options",
        "aiopyramid.websocket.config.gunicorn",
        "aiopyramid.websocket.config.uwsgi",
        "aiopyramid.websocket.config._uwsgi_connection",
        "aiopyramid._granian",
        "aiopyramid.gunicorn",
        "aiopyramid.gunicorn.worker",
        "aiopyramid.gunicorn._protocol",
        "aiopyramid.gunicorn._websocket",
        "aiopyramid.gunicorn._denial",
        "aiopyramid.gunicorn._http1",
        "aiopyramid.gunicorn._http2",
        "aiopyramid.gunicorn._access",
        "aiopyramid.gunicorn._response",
    },
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def runtime_imports(path: Path) -> set[str]:
    """The aiopyramid modules that ``path`` imports when it runs."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("aiopyramid")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.startswith("aiopyramid"):
                for alias in node.names:
                    candidate = f"{source}.{alias.name}"
                    found.add(candidate if is_module(candidate) else source)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): runtime_imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
    """A module missing from LAYERS has to be placed there by its author."""
    placed = set().union(*LAYERS)
    assert sorted(set(import_graph()) - placed) == []


def test_imports_never_run_up_a_layer():
    """No module imports one from a layer above its own."""
    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    upward = [
        f"{module} -> {imported}"
        for module, imports in import_graph().items()
        for imported in imports
        if layer_of[imported] > layer_of[module]
    ]
    assert upward == []


def test_imports_form_no_cycle():
    """Following imports from any module never leads back to it."""
    graph = import_graph()

    def reaches(start: str, target: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module == target:
                return True
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))
        return False

    assert [m for m in graph if reaches(m, m)] == []


def test_the_websocket_mapper_does_not_import_the_asgi_bridge():
    """WEBSOCKET_KEY and the ws object live apart from the bridge's halves,
    and neither half imports the other."""
    graph = import_graph()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))
        return seen

    bridge = {"aiopyramid.asgi", "aiopyramid._asgi_http", "aiopyramid._asgi_websocket"}
    assert reachable("aiopyramid.websocket.config.gunicorn") & bridge == set()
    assert "aiopyramid._asgi_websocket" not in reachable("aiopyramid._asgi_http")
    assert "aiopyramid._asgi_http" not in reachable("aiopyramid._asgi_websocket")
