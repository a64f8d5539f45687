"""Mutation check of the timing code: plants one-line defects in a copy of the repo and reruns the fast tests.

A script, not a test module and not a CI step (pytest collects only test_*.py, so never this file):

    nice .venv/bin/python tests/mutation.py --max-per-module 12        # a sample of each module's mutants
    nice .venv/bin/python tests/mutation.py --modules timeouts --all   # every mutant of one module
    .venv/bin/python tests/mutation.py --list --modules headers        # what would be planted (and stale EQUIVALENT
                                                                       # entries), without running

Each mutant is one change to one line, generated from the module's syntax tree: an operator swapped (+/-, * and /,
< and <=, == and !=, and/or, in/not in), a number changed (n -> n + 1, x -> 2x, 0 -> 1), True/False flipped,
max/min swapped, a `not` dropped, a statement replaced by `pass`, or the first two arguments of a call swapped.
It is planted in a temporary copy of the repo (never in the tree this runs from: other work happens there), the
tests run against that copy with a per-mutant timeout, and the mutant is killed (a test failed), survived, or timed
out (counted as killed: a hang is noticed too).  Survivors listed in EQUIVALENT below change nothing observable
and are left out of the score, each with the reason.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("operation", "streams", "timeouts", "errors", "headers", "attributes", "spans", "metrics")
# Fast ones first (the run stops at the first failure); test_reliability's thousand-stream test is the slowest.
# test_conventions_latest reads the latest conventions' metrics (metrics.py), test_failure_cause every cause
# (errors.py, the spans' failure cause), the refusal-fallback tests the middleware hops (operation.py, streams.py).
TESTS = ("tests/test_units.py", "tests/test_core_agent.py", "tests/test_conventions_latest.py",
         "tests/test_failure_cause.py",
         "tests/test_sdk_surfaces.py::test_refusal_fallback_records_each_attempts_model",
         "tests/test_sdk_surfaces.py::test_refusal_fallback_async_stream",
         "tests/test_reliability.py")
# Slow and about other things (memory retention, secrets in a child process): left out to keep a mutant's run short.
DESELECT = (
    "tests/test_reliability.py::test_memory_returns_to_baseline_after_load",
    "tests/test_reliability.py::test_no_secret_reaches_otlp_metrics_or_logs",
)
IGNORE = shutil.ignore_patterns(".git", ".venv", ".venvs", "__pycache__", "*.egg-info", ".pytest_cache", "node_modules")

# (module, original source of the mutated node, mutation) -> why the mutant cannot be told apart from the original.
EQUIVALENT: Dict[Tuple[str, str, str], str] = {
    ("streams", "if wait > attempt.max_gap:", "> -> >="):
        "on an equal wait it stores the value already there",
    ("streams", "if wait > attempt.pre_wait:", "> -> >="):
        "on an equal wait it stores the value already there",
    ("streams", 'elif capture and event == "content_block_delta":', "and -> or"):
        "without capture read_text returns at once (output_parts is None); with it, the other events it then "
        "reads (content_block_start, ping, ...) carry no delta text, so nothing is appended",
    ("timeouts", "return None, None", "statement -> pass"):
        "line 41 (timeout is None): falling through gives _seconds(None), getattr(None, ...) -> (None, None) too; "
        "the same text on lines 34, 48 and 75 (the except branches) is not equivalent and is killed (test_units)",
    ("errors", "transport = False", "statement -> pass"):
        "transport is read unassigned only in `if not transport:`, whose UnboundLocalError failure_cause catches "
        "and answers CAUSE_OTHER, the answer of the original branch",
    ("headers", "return None", "statement -> pass"):
        "lines 20, 29, 35, 40, 41 and 68: falling through raises inside the try (None.get, float(None), "
        "mktime_tz(None)) or reaches the next `return None`/the end, None either way; line 65 (request_id's except) "
        "is not equivalent and is killed (test_units)",
    ("attributes", "_ROUTE_CACHE[path] = found", "statement -> pass"):
        "a cache: route() computes the same string without it",
    ("attributes", "_BASE_CACHE[key] = attrs", "statement -> pass"):
        "a cache: base() builds an equal dict without it (nothing compares these dicts by identity)",
    ("attributes", "if entry is not None and entry[0] is base_url:", "is -> is not"):
        "the identity cache is never hit (an entry keeps its URL alive, so an id found is always that URL); the "
        "string-keyed cache below gives the same answer",
    ("attributes", "if entry is not None and entry[0] is base_url:", "0 -> 1"):
        "entry[1] is a (host, port) tuple, never the URL: the identity cache is never hit; the string-keyed cache "
        "gives the same answer",
    ("attributes", 'if len(_SERVERS_BY_ID) < 256 and type(base_url).__name__ == "URL":', "== -> !="):
        "only which objects the identity cache holds changes: an entry keeps its object alive, so a lookup by id "
        "finds the same object and the answer computed for it; the SDK's base_url is an immutable httpx URL",
    ("metrics", "def __init__(self, meter: Meter, chunk_metrics: bool = False, latest: Optional[bool] = None) -> None:",
     "False -> True"):
        "the default is never used: the only caller (telemetry.py) passes chunk_metrics from the settings",
}

_BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
           ast.Mod: ast.Mult}
_CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
           ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Lt: "<",
           ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
           ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}


@dataclass
class Mutant:
    """One planted defect: where, what it was, what it becomes."""

    module: str
    index: int  # position among the module's mutants, for --only
    line: int
    original: str
    change: str
    source: str = ""  # the whole mutated module

    def key(self) -> Tuple[str, str, str]:
        """Returns the identity EQUIVALENT uses (stable across edits elsewhere in the module)."""
        return self.module, self.original, self.change


def _docstring_nodes(tree: ast.AST) -> set:
    """Returns the ids of docstring expression nodes (never mutated)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first))
    return found


def _only_a_type_error(call: ast.Call) -> bool:
    """Returns whether swapping this call's arguments can only raise a TypeError (isinstance(dict, x), ...)."""
    name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
    return name in ("isinstance", "getattr", "hasattr", "setattr", "get", "startswith")


def _is_logging(node: ast.AST) -> bool:
    """Returns whether a statement only logs (dropping it changes no number)."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
        and isinstance(node.value.func, ast.Attribute) and isinstance(node.value.func.value, ast.Name) \
        and node.value.func.value.id == "logger"


def _edits(tree: ast.AST) -> Iterator[Tuple[ast.AST, str, callable]]:
    """Yields (node, description, apply) for every mutation of the tree; apply(node) mutates it in place."""
    skip = _docstring_nodes(tree)
    # Only statements inside functions are dropped: a dropped module constant fails at import, which tells nothing.
    in_functions = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for inner in ast.walk(node) if inner is not node}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            new = _BINOPS[type(node.op)]
            yield node, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}", lambda n, new=new: setattr(n, "op", new())
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMPOPS:
                    new = _CMPOPS[type(op)]

                    def apply(n, i=i, new=new):
                        n.ops[i] = new()
                    yield node, f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]}", apply
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield node, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}", lambda n, new=new: setattr(n, "op", new())
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop not", None  # replaced by its operand, see mutants_of
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = node.value
            if isinstance(value, bool):
                new_value = not value
            elif value == 0:
                new_value = type(value)(1)
            elif isinstance(value, int):
                new_value = value + 1
            else:
                new_value = value * 2
            yield node, f"{value!r} -> {new_value!r}", lambda n, v=new_value: setattr(n, "value", v)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
            new_name = "min" if node.func.id == "max" else "max"
            yield node, f"{node.func.id} -> {new_name}", lambda n, v=new_name: setattr(n.func, "id", v)
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and not _only_a_type_error(node) and not any(
                isinstance(a, ast.Starred) for a in node.args[:2]):
            def swap(n):
                n.args[0], n.args[1] = n.args[1], n.args[0]
            yield node, "swap first two arguments", swap
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return)) and id(node) in in_functions \
                and id(node) not in skip and not _is_logging(node):
            yield node, "statement -> pass", None  # see mutants_of


class _Replace(ast.NodeTransformer):
    """Replaces one node (found by identity) with another."""

    def __init__(self, target: ast.AST, replacement: ast.AST) -> None:
        self.target, self.replacement = target, replacement

    def generic_visit(self, node):
        if node is self.target:
            return self.replacement
        return super().generic_visit(node)


def mutants_of(module: str, root: Path) -> List[Mutant]:
    """Returns every mutant of claude_otel/<module>.py under root, without its source yet (see build)."""
    text = (root / "claude_otel" / f"{module}.py").read_text()
    lines = text.splitlines()
    found = []
    for index, (node, change, _) in enumerate(_edits(ast.parse(text))):
        if getattr(node, "lineno", None) is None:
            continue
        original = lines[node.lineno - 1].strip()
        if original.startswith(("__slots__", "import ", "from ")):
            continue
        found.append(Mutant(module, index, node.lineno, original, change))
    return found


def build(mutant: Mutant, root: Path) -> bool:
    """Sets the mutant's whole mutated source; returns False when the mutation does not compile."""
    path = root / "claude_otel" / f"{mutant.module}.py"
    tree = ast.parse(path.read_text())  # a fresh tree: the walk order is the same, so the index names the same edit
    for index, (node, change, apply) in enumerate(_edits(tree)):
        if index == mutant.index:
            break
    else:
        return False
    if change == "statement -> pass":
        replacement = ast.copy_location(ast.Pass(), node)
        tree = _Replace(node, replacement).visit(tree)
    elif change == "drop not":
        tree = _Replace(node, copy.deepcopy(node.operand)).visit(tree)
    else:
        apply(node)
    ast.fix_missing_locations(tree)
    try:
        source = ast.unparse(tree)
        compile(source, str(path), "exec")
    except (SyntaxError, ValueError):
        return False
    mutant.source = source
    return True


def _copy_repo(from_head: bool) -> Path:
    """Returns a temporary copy of the repo: its last commit, or the working tree's files as they are."""
    where = Path(tempfile.mkdtemp(prefix="claude-otel-mutation-"))
    repo = where / "repo"
    if from_head:
        repo.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)
    else:
        shutil.copytree(ROOT, repo, ignore=IGNORE, symlinks=True)
    return repo


def _run_tests(repo: Path, tests: List[str], timeout: float) -> Tuple[str, float, str]:
    """Returns (passed|failed|timeout, seconds, last output lines) of one pytest run in the copy; kills it on timeout."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
               *tests, *[f"--deselect={d}" for d in DESELECT]]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return "timeout", time.monotonic() - start, (out or "")[-400:]
    tail = "\n".join((out or "").strip().splitlines()[-3:])
    return ("passed" if proc.returncode == 0 else "failed"), time.monotonic() - start, tail


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the mutation check; returns 0 when every non-equivalent mutant was killed, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", default=",".join(MODULES), help="comma-separated claude_otel modules")
    parser.add_argument("--max-per-module", type=int, default=12, help="mutants sampled per module (seeded)")
    parser.add_argument("--all", action="store_true", help="every mutant, no sampling")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--only", default="", help="module:index[,module:index...] of mutants to run")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant before it counts as a hang")
    parser.add_argument("--tests", default=",".join(TESTS))
    parser.add_argument("--working-tree", action="store_true",
                        help="copy the working tree's files instead of the last commit")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)

    modules = [m for m in args.modules.split(",") if m]
    tests = [t for t in args.tests.split(",") if t]
    only = {tuple(item.split(":")) for item in args.only.split(",") if item}
    repo = _copy_repo(from_head=not args.working_tree)
    try:
        chosen: Dict[str, List[Mutant]] = {}
        for module in modules:
            every = mutants_of(module, repo)
            if only:
                picked = [m for m in every if (module, str(m.index)) in only]
            elif args.all:
                picked = every
            else:
                picked = random.Random(f"{args.seed}:{module}").sample(every, min(args.max_per_module, len(every)))
                picked.sort(key=lambda m: m.index)
            chosen[module] = [m for m in picked if build(m, repo)]
            print(f"{module}: {len(every)} mutants, running {len(chosen[module])}", flush=True)
        if args.list:
            known = {m.key() for module in MODULES for m in mutants_of(module, repo)}
            for key in EQUIVALENT:
                if key not in known:
                    print(f"stale EQUIVALENT entry (no such mutant any more): {key}")
            for module, picked in chosen.items():
                for m in picked:
                    print(f"  {module}:{m.index} line {m.line}: {m.change}  |  {m.original}")
            return 0

        verdict, seconds, tail = _run_tests(repo, tests, args.timeout * 2)
        print(f"baseline (no mutant): {verdict} in {seconds:.0f} s", flush=True)
        if verdict != "passed":
            print(tail)
            print("the unmutated copy fails its tests: no mutant can be judged")
            return 2

        results: Dict[str, Dict[str, List[Mutant]]] = {}
        for module, picked in chosen.items():
            path = repo / "claude_otel" / f"{module}.py"
            original = path.read_text()
            buckets = results.setdefault(module, {"killed": [], "survived": [], "timeout": [], "equivalent": []})
            try:
                for m in picked:
                    path.write_text(m.source)
                    verdict, seconds, tail = _run_tests(repo, tests, args.timeout)
                    if verdict == "failed":
                        bucket = "killed"
                    elif verdict == "timeout":
                        bucket = "timeout"
                    else:
                        bucket = "equivalent" if m.key() in EQUIVALENT else "survived"
                    buckets[bucket].append(m)
                    print(f"  {bucket:10} {module}:{m.index} line {m.line} ({m.change}) {seconds:.0f} s"
                          f"  |  {m.original}", flush=True)
            finally:
                path.write_text(original)

        print("\nscore (killed + timeout) / (all - equivalent), per module:")
        total_killed = total_judged = 0
        for module, buckets in results.items():
            killed = len(buckets["killed"]) + len(buckets["timeout"])
            judged = killed + len(buckets["survived"])
            total_killed += killed
            total_judged += judged
            share = f"{100 * killed / judged:.0f} %" if judged else "-"
            print(f"  {module:11} {killed}/{judged} killed ({share}); {len(buckets['killed'])} failed a test, "
                  f"{len(buckets['timeout'])} timed out, {len(buckets['survived'])} survived, "
                  f"{len(buckets['equivalent'])} equivalent")
        survivors = [m for b in results.values() for m in b["survived"]]
        if survivors:
            print("\nsurvivors (strengthen a test, or add to EQUIVALENT with the reason):")
            for m in survivors:
                print(f"  ({m.module!r}, {m.original!r}, {m.change!r})  # {m.module}:{m.index} line {m.line}")
        print(f"\ntotal: {total_killed}/{total_judged} killed")
        return 0 if not survivors else 1
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
