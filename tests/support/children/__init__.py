"""Small real child programs for the orchestrator's tests (run as scripts)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def program(name: str) -> str:
    return str(HERE / f"{name}.py")
