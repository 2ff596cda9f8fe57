"""The rule of the house, enforced: arrows point inwards."""

import ast
import pathlib

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ccl"
IO_LIBRARIES = {"twisted", "txpostgres", "klein", "psycopg2", "treq", "PIL", "multipart", "jinja2", "psutil"}
# argon2 is pure computation (no I/O): the password rules live in the domain with it.
DOMAIN_ALLOWED_THIRD_PARTY = {"attrs", "argon2", "zope"}


def imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0] if not node.module.startswith("ccl.") else node.module)
    return roots


class LayerTests(SynchronousTestCase):
    def test_domain_imports_no_io_library_and_no_outer_layer(self):
        """ccl/domain imports no I/O library and no outer layer."""
        for path in (PACKAGE / "domain").rglob("*.py"):
            for name in imported_roots(path):
                self.assertNotIn(name.split(".")[0], IO_LIBRARIES, f"{path} imports {name}")
                self.assertFalse(name.startswith(("ccl.adapters", "ccl.application", "ccl.orchestrator", "ccl.cli")),
                                 f"{path} imports {name}")

    def test_application_imports_no_io_library_and_no_adapter(self):
        """ccl/application imports only Deferreds, clocks and logging from Twisted, no I/O library, no adapter."""
        # Deferreds, clocks and logging are the application's currency; networking and storage stay outside.
        allowed_twisted = {"twisted.internet.defer", "twisted.internet.task", "twisted.logger",
                           "twisted.python.failure", "twisted.internet.interfaces"}
        for path in (PACKAGE / "application").rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    root = name.split(".")[0]
                    if root == "twisted":
                        self.assertIn(name, allowed_twisted, f"{path} imports {name}")
                    else:
                        self.assertNotIn(root, IO_LIBRARIES, f"{path} imports {name}")
                    self.assertFalse(name.startswith(("ccl.adapters", "ccl.orchestrator", "ccl.cli")),
                                     f"{path} imports {name}")

    def test_no_print_in_service_code(self):
        """Only the CLI calls print()."""
        for path in PACKAGE.rglob("*.py"):
            if "cli" in path.relative_to(PACKAGE).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                    self.fail(f"print() in service code: {path}:{node.lineno}")

    def test_composition_roots_are_imported_by_no_layer(self):
        """No module outside ccl/services imports a composition root."""
        # ccl/services/<plugin>.py wires every layer together; a layer importing it would point outwards.
        for path in PACKAGE.rglob("*.py"):
            if "services" == path.relative_to(PACKAGE).parts[0]:
                continue
            for name in imported_roots(path):
                self.assertFalse(name.startswith("ccl.services"), f"{path} imports {name}")

    def test_web_modules_import_no_storage_adapter(self):
        """No module under ccl/adapters/web (UI, ingest, shared) imports ccl.adapters.storage, not even inside a function."""
        # Web handlers (the UI and the Jetson API) reach storage only through ports and use cases
        # (ccl/ports, ccl/application); the composition roots in ccl/services build the storage
        # adapters and hand them in.
        for path in (PACKAGE / "adapters" / "web").rglob("*.py"):
            for name in imported_roots(path) | _lazy_imports(path):
                self.assertFalse(name.startswith("ccl.adapters.storage"), f"{path} imports {name}")


def _lazy_imports(path: pathlib.Path) -> set[str]:
    """Modules named in ``from ccl... import`` anywhere in the file, also inside functions, and
    relative imports resolved against the file's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module]))
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found
