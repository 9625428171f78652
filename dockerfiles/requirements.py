"""Print a project's requirements from its pyproject.toml: dependencies, the named extras, and more.

Used inside the image build (dockerfiles/base.Dockerfile), so that the dependency layer depends on
pyproject.toml and the wheelhouse only, never on the source: a code-only change leaves it cached.
Requirements that name the project itself (``all = ["pkg[a,b]"]``, or ``mltest`` in mltest's own
repository) are expanded, never installed from an index. The optional further requirements (mltest
and torch, from the build arguments) come last; empty ones are skipped. Python 3.11+ (tomllib),
standard library only.

    python3 requirements.py pyproject.toml test,docs [mltest torch ...] > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib


def _name(requirement: str) -> tuple[str, list[str]]:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", requirement)
    if match is None:
        raise SystemExit(f"requirements.py: cannot read the requirement {requirement!r} in pyproject.toml")
    extras = [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), extras


def requirements(project: dict[str, object], extras: list[str], more: list[str] | None = None) -> list[str]:
    name = _name(str(project.get("name", "")))[0] if project.get("name") else ""
    optional = project.get("optional-dependencies") or {}
    assert isinstance(optional, dict)
    wanted: list[str] = []
    seen_extras: set[str] = set()

    def add(reqs: object) -> None:
        for req in reqs if isinstance(reqs, list) else []:
            req_name, req_extras = _name(str(req))
            if req_name == name:  # a self-reference: expand its extras instead
                expand(req_extras)
            elif req not in wanted:
                wanted.append(str(req))

    def expand(names: list[str]) -> None:
        for extra in names:
            if extra in seen_extras:
                continue
            if extra not in optional:
                raise SystemExit(
                    f"requirements.py: pyproject.toml has no extra {extra!r} (it has: {', '.join(sorted(optional))}); "
                    "fix the EXTRAS build argument"
                )
            seen_extras.add(extra)
            add(optional[extra])

    add(project.get("dependencies") or [])
    expand(extras)
    add([m for m in more or [] if m.strip()])
    return wanted


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: requirements.py PYPROJECT [EXTRA,EXTRA...] [REQUIREMENT...]", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        project = tomllib.load(f).get("project")
    if not isinstance(project, dict):
        raise SystemExit(f"requirements.py: {argv[0]} has no [project] table; the image installs a PEP 621 project")
    extras = [e.strip() for e in (argv[1] if len(argv) > 1 else "").split(",") if e.strip()]
    print("\n".join(requirements(project, extras, argv[2:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
