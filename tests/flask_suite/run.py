"""Run Flask's own test suite plainly and with every app wrapped in wsgimon, then compare.

Usage::

    python -m tests.flask_suite.run [--keep DIR] [--write FILE] [--timeout SECONDS]

The installed Flask's source distribution is downloaded from PyPI and its
``tests/`` run twice in fresh interpreters, once as is and once with
``WSGIMON_WRAP=1`` (see ``wrap_plugin``). Any test that passes plainly must pass
wrapped, bar the allow-list below; a wrapped run must also leave no wsgimon
thread and no more live Flask apps than the plain one. Exit status 1 on any
unexpected difference, so the check can gate CI.

Isolation, and why:

* The inner runs have cwd, ``--rootdir`` and ``-c`` set to Flask's source, so
  Flask's own ``conftest.py`` and pytest config apply (its ``filterwarnings =
  error`` included) and nothing of ``/work/main``'s (our ``filterwarnings``, our
  ``tests/conftest.py``) leaks in.
* Our repository's top-level ``tests`` package would collide with Flask's
  ``tests`` directory if it were importable (``-p tests.flask_suite...`` imports
  it, and whichever ``tests`` is imported first wins in ``sys.modules``). So the
  inner ``PYTHONPATH`` is a scratch directory holding copies of just the plugin,
  under the unique name ``wsgimon_flask_suite_plugin``, and the working tree's
  ``wsgimon`` package. Nothing else of the repository is importable there.
* ``PYTHONDEVMODE``, ``PYTHONWARNINGS``, ``PYTEST_ADDOPTS``, ``PYTEST_PLUGINS``
  and ``WSGIMON_*`` are dropped from the inner environment, and plugin
  autoloading is off (Flask's suite needs none), so both runs see the same
  interpreter setup whatever the calling shell has.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FILE = Path(__file__).resolve().with_name("wrap_plugin.py")
PLUGIN_NAME = "wsgimon_flask_suite_plugin"

# Tests expected to differ when wrapped, with why a transparent middleware still fails them.
ALLOWED: dict[str, str] = {
    "tests/test_basic.py::test_app_freed_on_zero_refcount": (
        "`app.wsgi_app = M(app.wsgi_app)` stores a bound method of the app on the app: a reference cycle, "
        "so the app is freed by the cyclic GC, not at refcount zero. Werkzeug's ProxyFix fails it the same way."
    ),
}

# Lower bounds for test dependencies missing from the environment, when Flask's group gives no version.
LOOSE_PINS: dict[str, str] = {
    "asgiref": ">=3.2",
    "greenlet": ">=1.0",
    "pytest": ">=8",
    "python-dotenv": ">=0.21",
}
# Used when the sdist has no readable ``[dependency-groups] tests`` (older Flask releases).
FALLBACK_TEST_DEPS = ["asgiref", "greenlet", "pytest", "python-dotenv"]

MAX_LISTED = 30  # list every unexpected id up to this many, else a sample per kind of failure
GROUP_SAMPLE = 5

DROPPED_ENV = ("PYTHONDEVMODE", "PYTHONWARNINGS", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH")


@dataclass
class Run:
    """One inner pytest run: its JSON report (``None`` when it crashed), exit code, log and wall time."""

    label: str
    data: dict[str, Any] | None
    returncode: int | None
    log: Path
    seconds: float

    def ids(self, outcome: str) -> set[str]:
        return set(self.data.get(outcome, [])) if self.data else set()


def _run_bounded(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float) -> int | None:
    """Run ``cmd`` with output to ``log``; on timeout kill its whole process group and return ``None``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.write(f"\n*** killed after {timeout:.0f} s ***\n".encode())
            return None


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def fetch_source(flask_version: str, work: Path, timeout: float) -> Path:
    """Download and unpack Flask's sdist; reuse an earlier unpack in ``work`` (handy with ``--keep``)."""
    src = work / f"flask-{flask_version}"
    if (src / "tests" / "conftest.py").is_file():
        return src
    dist = work / "sdist"
    dist.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"flask=={flask_version}"]
    log = work / "pip-download.log"
    code = _run_bounded([*cmd, "-d", str(dist), "--quiet"], cwd=work, env=dict(os.environ), log=log, timeout=timeout)
    archives = sorted(p for p in dist.iterdir() if p.name.lower().startswith("flask-"))
    if code != 0 or not archives:
        raise SystemExit(f"pip download failed:\n{_tail(log)}")
    archive = archives[0]
    unpacked = work / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(unpacked)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(unpacked, filter="data")
            else:  # Python without PEP 706; the archive comes from PyPI over HTTPS
                tf.extractall(unpacked)  # noqa: S202
    (top,) = list(unpacked.iterdir())
    top.rename(src)
    return src


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; empty when unreadable or on Python 3.10, where the fallbacks apply instead."""
    try:
        tomllib = importlib.import_module("tomllib")  # by name: the project's type checking targets 3.10
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (ImportError, OSError, ValueError):
        return {}
    return data


def _test_requirements(src: Path) -> list[str]:
    """Flask's ``tests`` dependency group, as its own tox environment installs it."""
    groups = _read_toml(src / "pyproject.toml").get("dependency-groups", {})
    return [r for r in groups.get("tests", FALLBACK_TEST_DEPS) if isinstance(r, str)]


def _locked_versions(src: Path) -> dict[str, str]:
    """Versions pinned in Flask's ``uv.lock`` for this interpreter; empty when there is no readable lock."""
    from packaging.markers import Marker

    pins: dict[str, str] = {}
    for package in _read_toml(src / "uv.lock").get("package", []):
        markers = package.get("resolution-markers")
        if not markers or any(Marker(m).evaluate() for m in markers):
            pins[package["name"].lower()] = package["version"]
    return pins


def prepare_test_tools(src: Path, work: Path, timeout: float) -> tuple[Path, list[str]]:
    """Install what Flask's tests need and this environment lacks into a directory put first on ``PYTHONPATH``.

    Missing packages of Flask's ``tests`` group get a loose lower bound. pytest
    itself is the exact version Flask's ``uv.lock`` pins whenever the
    environment's differs: Flask's suite reaches into ``_pytest`` internals
    (``_pytest.monkeypatch.notset``) that newer pytest releases drop. The project
    environment is left untouched, and so are Flask, Werkzeug and the other
    packages under test.
    """
    from packaging.requirements import Requirement

    locked = _locked_versions(src)
    wanted: list[str] = []
    notes: list[str] = []
    for line in _test_requirements(src):
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = req.name.lower()
        try:
            installed: str | None = version(name)
        except PackageNotFoundError:
            installed = None
        pin = locked.get(name)
        if name == "pytest" and pin and installed != pin:
            wanted.append(f"pytest=={pin}")
            notes.append(f"pytest=={pin} from Flask's lock (the environment has {installed})")
        elif installed is None:
            wanted.append(f"{req.name}{req.specifier or LOOSE_PINS.get(name, '')}")
            notes.append(f"{wanted[-1]} (missing from the environment)")
    side = work / "test-tools"
    shutil.rmtree(side, ignore_errors=True)
    side.mkdir(parents=True)
    if wanted:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(side)]
        log = work / "pip-install.log"
        if _run_bounded([*cmd, *wanted], cwd=work, env=dict(os.environ), log=log, timeout=timeout) != 0:
            raise SystemExit(f"installing {wanted} failed:\n{_tail(log)}")
    return side, notes


def make_pythonpath(work: Path, tools: Path) -> str:
    """The test tools, then a snapshot of only the plugin (under a collision-free name) and ``wsgimon``.

    Copies rather than links: both runs then test the same code even if the
    working tree is edited while the suite runs.
    """
    snapshot = work / "pythonpath"
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir(parents=True)
    shutil.copy2(PLUGIN_FILE, snapshot / f"{PLUGIN_NAME}.py")
    shutil.copytree(PROJECT_ROOT / "wsgimon", snapshot / "wsgimon", ignore=shutil.ignore_patterns("__pycache__"))
    return os.pathsep.join([str(tools), str(snapshot)])


def run_suite(label: str, src: Path, work: Path, pythonpath: str, *, wrap: bool, timeout: float) -> Run:
    report = work / f"report-{label}.json"
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith("WSGIMON_")}
    env.update(
        PYTHONPATH=pythonpath,
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        WSGIMON_WRAP="1" if wrap else "0",
        WSGIMON_SUITE_REPORT=str(report),
    )
    basetemp = work / f"basetemp-{label}"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        PLUGIN_NAME,
        "--rootdir",
        str(src),
        "-c",
        str(src / "pyproject.toml"),
        "--basetemp",
        str(basetemp),
    ]
    log = work / f"pytest-{label}.log"
    started = time.monotonic()
    code = _run_bounded(cmd, cwd=src, env=env, log=log, timeout=timeout)
    seconds = time.monotonic() - started
    data = json.loads(report.read_text()) if report.is_file() else None
    return Run(label, data, code, log, seconds)


@dataclass
class Comparison:
    unexpected: list[str]  # node ids that passed plainly and not wrapped, not allow-listed
    allowed: list[str]  # allow-listed node ids that did differ
    stale: list[str]  # allow-listed node ids that passed wrapped after all
    gained: list[str]  # passed wrapped only
    resource_problems: list[str]


def compare(plain: Run, wrapped: Run) -> Comparison:
    lost = plain.ids("passed") - wrapped.ids("passed")
    problems: list[str] = []
    for run in (plain, wrapped):
        if run.data is None:
            problems.append(f"the {run.label} run wrote no report (exit status {run.returncode})")
    if plain.data is not None and not plain.data["passed"]:
        problems.append("the plain run passed no test at all")
    if plain.data is not None and wrapped.data is not None:
        leftover = [n for n in wrapped.data["thread_names"] if n.startswith("wsgimon-")]
        if leftover:
            problems.append(f"wsgimon threads still alive at the end: {leftover}")
        if wrapped.data["live_flask_apps"] > plain.data["live_flask_apps"]:
            problems.append("more Flask apps alive after GC wrapped than plain (a leak)")
        if wrapped.data["apps_created"] != plain.data["apps_created"]:
            problems.append("the runs created different numbers of apps, so they did not run the same tests")
    present = plain.ids("passed") & (wrapped.ids("passed") | wrapped.ids("failed") | wrapped.ids("errored"))
    return Comparison(
        unexpected=sorted(lost - ALLOWED.keys()),
        allowed=sorted(lost & ALLOWED.keys()),
        stale=sorted((ALLOWED.keys() & present) - lost),
        gained=sorted(wrapped.ids("passed") - plain.ids("passed")),
        resource_problems=problems,
    )


def _first_line(text: str) -> str:
    """The exception line of a pytest failure text (the first ``E`` line of the last block), for a summary."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    block: list[str] = []
    for ln in reversed(lines):
        if ln.startswith("E "):
            block.append(ln)
        elif block:
            break
    if block:
        return block[-1][2:].strip()[:200]
    return (lines[-1].strip() if lines else "")[:200]


def render(flask_version: str, plain: Run, wrapped: Run, cmp: Comparison, installed: list[str]) -> str:
    def count(run: Run, outcome: str) -> str:
        return str(len(run.ids(outcome))) if run.data else "n/a"

    def stat(run: Run, key: str) -> str:
        return str(run.data[key]) if run.data and run.data.get(key) is not None else "n/a"

    ok = not (cmp.unexpected or cmp.resource_problems)
    out = [
        f"## Flask's test suite with and without wsgimon: {'transparent' if ok else 'DIFFERENCES'}",
        "",
        f"Flask {flask_version}, Python {sys.version.split()[0]}; every app wrapped as "
        '`app.wsgi_app = MonitorMiddleware(app.wsgi_app, storage="memory://")`.',
    ]
    if installed:
        out.append(f"Installed beside the environment for Flask's tests: {'; '.join(installed)}.")
    out += [
        "",
        "| | plain | wrapped |",
        "|---|---:|---:|",
        *(f"| {o} | {count(plain, o)} | {count(wrapped, o)} |" for o in ("passed", "failed", "errored", "skipped")),
        f"| pytest exit status | {plain.returncode} | {wrapped.returncode} |",
        f"| wall time (s) | {plain.seconds:.1f} | {wrapped.seconds:.1f} |",
        "",
        "At the end of each pytest run, after `gc.collect()`:",
        "",
        "| | plain | wrapped |",
        "|---|---:|---:|",
        f"| threads left | {stat(plain, 'threads')} | {stat(wrapped, 'threads')} |",
        f"| live Flask apps after GC | {stat(plain, 'live_flask_apps')} | {stat(wrapped, 'live_flask_apps')} |",
        f"| RSS MiB | {stat(plain, 'rss_mib')} | {stat(wrapped, 'rss_mib')} |",
        f"| apps created | {stat(plain, 'apps_created')} | {stat(wrapped, 'apps_created')} |",
        "",
    ]
    texts: dict[str, str] = wrapped.data.get("failure_texts", {}) if wrapped.data else {}
    if cmp.unexpected:
        out += [f"**Unexpected: {len(cmp.unexpected)} passed plainly, not wrapped**", ""]
        groups: dict[str, list[str]] = {}
        for nodeid in cmp.unexpected:
            groups.setdefault(_first_line(texts.get(nodeid, "")) or "not run wrapped", []).append(nodeid)
        for reason, ids in sorted(groups.items(), key=lambda item: -len(item[1])):
            shown = ids if len(cmp.unexpected) <= MAX_LISTED else ids[:GROUP_SAMPLE]
            more = f" and {len(ids) - len(shown)} more" if len(shown) < len(ids) else ""
            out.append(f"- {len(ids)} x `{reason}`: " + ", ".join(f"`{n}`" for n in shown) + more)
        out.append("")
    if cmp.allowed:
        out += ["Expected differences (allow-listed):", ""]
        out += [f"- `{n}`: {ALLOWED[n]}" for n in cmp.allowed]
        out.append("")
    if cmp.stale:
        out += ["Allow-listed but passed wrapped (the entry may be stale):", ""]
        out += [f"- `{n}`" for n in cmp.stale]
        out.append("")
    if plain.data and (plain.data["failed"] or plain.data["errored"]):
        plain_texts: dict[str, str] = plain.data.get("failure_texts", {})
        out += ["Failing plainly as well, so not compared:", ""]
        out += [f"- `{n}`: {_first_line(plain_texts.get(n, ''))}" for n in plain.data["failed"] + plain.data["errored"]]
        out.append("")
    if cmp.gained:
        out += ["Passed wrapped only:", ""]
        out += [f"- `{n}`" for n in cmp.gained]
        out.append("")
    if cmp.resource_problems:
        out += ["**Problems**", ""]
        out += [f"- {p}" for p in cmp.resource_problems]
        out.append("")
    if not (cmp.unexpected or cmp.allowed or cmp.gained):
        out += ["No difference in test outcomes.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep the sdist, logs and JSON reports")
    parser.add_argument("--write", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per subprocess (default 600)")
    args = parser.parse_args(argv)

    flask_version = version("flask")
    with tempfile.TemporaryDirectory(prefix="wsgimon-flask-suite-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = fetch_source(flask_version, work, args.timeout)
        tools, installed = prepare_test_tools(src, work, args.timeout)
        pythonpath = make_pythonpath(work, tools)
        plain = run_suite("plain", src, work, pythonpath, wrap=False, timeout=args.timeout)
        wrapped = run_suite("wrapped", src, work, pythonpath, wrap=True, timeout=args.timeout)
        cmp = compare(plain, wrapped)
        text = render(flask_version, plain, wrapped, cmp, installed)
        if cmp.resource_problems or cmp.unexpected:
            for run in (plain, wrapped):
                if run.data is None:
                    text += f"\nLast lines of the {run.label} log:\n\n```\n{_tail(run.log)}\n```\n"
    print(text)
    if args.write:
        args.write.write_text(text + "\n")
    return 1 if cmp.unexpected or cmp.resource_problems else 0


if __name__ == "__main__":
    sys.exit(main())
