"""dvc.yaml against the code and params.yaml: no result-changing input can change without dirtying a stage.

The rule (the header of dvc.yaml): each stage depends on

* every key of its params section (the section named like the stage) except the result-neutral
  ones (:data:`pipeline.config.RESULT_NEUTRAL`) and those its command line overrides
  (``train-student --arm NAME`` replaces ``arms`` by ``arms.NAME``; ``--seed`` and ``--out``
  replace theirs); and
* every module of this project its command imports, directly or not.

Checked for each pipeline (``dvc.yaml``, and ``real/dvc.yaml`` for a real dataset), with the stages
as DVC resolves them (matrix and ``${}`` included):

* the params each stage tracks, against params.yaml and the command's config dataclass;
* a sweep in a scratch git+DVC repository: every key of every section changes, and DVC's status
  must dirty exactly the stages the rule names;
* the import closure of each stage's command against its deps.

A config field that params.yaml leaves out would take its code default, which is a dep, so it
cannot change unseen; but ``dvc exp run -S +section.key=...`` (or a hand edit) could add it to
params.yaml without dirtying the stage. So params.yaml must spell out every result-changing field
(:func:`test_params_yaml_spells_out_every_result_changing_field`): then DVC tracks all of them,
and ``-S`` can only set keys that exist.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import click
import pytest
import yaml
from helpers import copy_project_files

from pipeline.config import RESULT_NEUTRAL

REPO = Path(__file__).resolve().parents[1]
PIPELINES = ("dvc.yaml", "real/dvc.yaml")
PACKAGES = ("pipeline", "teacher_extract", "student_train")

#: Config fields no DVC stage may set, so params.yaml need not spell them out: with ``shard`` set,
#: extract-teacher writes ``<out stem>.shardII-of-NN.h5`` instead of the stage's output, and DVC
#: would fail on the missing output rather than keep a stale one.
COMMAND_LINE_ONLY = frozenset({"shard"})


class StageInfo(NamedTuple):
    """What a resolved DVC stage says about itself, as plain data."""

    pipeline: str  # "dvc.yaml" or "real/dvc.yaml"
    name: str  # e.g. "train_student@hallucinet-0"
    wdir: Path
    cmd: tuple[str, ...]
    params: dict[str, frozenset[str]]  # params file (relative to REPO) -> tracked keys
    deps: tuple[Path, ...]  # absolute
    outs: tuple[Path, ...]  # absolute

    @property
    def section(self) -> str:
        """The params section the command reads: its ``--section``, else the one named like the stage."""
        if "--section" in self.cmd:
            return self.cmd[self.cmd.index("--section") + 1]
        return self.name.split("@")[0]


def resolve_stages(root: Path, pipeline: str) -> list[StageInfo]:
    """The stages of ``root/pipeline`` as DVC resolves them (its own templating and matrix expansion)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    # real/ is a DVC project of its own (``dvc init --subdir``): the root one does not see it.
    with Repo(str((root / pipeline).parent)) as repo:
        stages = []
        for stage in repo.index.stages:
            if Path(stage.dvcfile.path).resolve() != (root / pipeline).resolve():
                continue
            params = {
                str(Path(dep.fs_path).resolve().relative_to(root.resolve())): frozenset(dep.params)
                for dep in stage.deps
                if isinstance(dep, ParamsDependency)
            }
            deps = tuple(Path(d.fs_path).resolve() for d in stage.deps if not isinstance(d, ParamsDependency))
            outs = tuple(Path(o.fs_path).resolve() for o in stage.outs)
            stages.append(
                StageInfo(pipeline, stage.name, Path(stage.wdir), tuple(shlex.split(stage.cmd)), params, deps, outs)
            )
    return stages


@functools.cache
def project_stages(pipeline: str) -> tuple[StageInfo, ...]:
    return tuple(resolve_stages(REPO, pipeline))


ALL_STAGES = [stage for pipeline in PIPELINES for stage in project_stages(pipeline)]
STAGE_IDS = [f"{s.pipeline}:{s.name}" for s in ALL_STAGES]


# --- the command behind a stage ------------------------------------------------------------------


@functools.cache
def console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: command -> ``module:function``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed entry points say the same
        from importlib.metadata import entry_points

        return {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.value.startswith(PACKAGES)}
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def command_of(stage: StageInfo) -> click.Command:
    module, _, attr = console_scripts()[stage.cmd[0]].partition(":")
    return getattr(importlib.import_module(module), attr)


def cmd_options(stage: StageInfo) -> dict[str, Any]:
    """The options a stage's ``cmd`` gives, by parameter name (``--lambda`` -> ``lambda_weight``)."""
    command = command_of(stage)
    options, args, _ = command.make_parser(click.Context(command)).parse_args(list(stage.cmd[1:]))
    assert not args, f"{stage.name}: unexpected arguments {args}"
    return options


def config_class(command: click.Command) -> type:
    """The dataclass a command builds with ``load_config(Cls, read_params(...), ...)``."""
    callback = inspect.unwrap(command.callback)
    for node in ast.walk(ast.parse(inspect.getsource(callback).lstrip())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_config":
            return callback.__globals__[node.args[0].id]
    raise AssertionError(f"{command.name} calls no load_config(Config, ...)")


def params_file(stage: StageInfo) -> str:
    """The params file a stage reads: ``--params FILE`` in its cmd, which must be the one DVC tracks."""
    given = cmd_options(stage).get("params")
    assert given, f"{stage.name}: its cmd passes no --params"
    return str((stage.wdir / given).resolve().relative_to(REPO))


def expected_params(stage: StageInfo, section: dict[str, Any]) -> set[str]:
    """The rule: the section's keys, less the result-neutral ones and those the cmd line overrides."""
    given = cmd_options(stage)
    keys = set()
    for key in section:
        if key in RESULT_NEUTRAL or key in given:
            continue
        if key == "arms" and "arm" in given:  # --arm NAME applies arms.NAME only
            key = f"arms.{given['arm']}"
        keys.add(f"{stage.section}.{key}")
    return keys


def read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


# --- 1. params: dvc.yaml against params.yaml and the config dataclasses --------------------------


@pytest.mark.parametrize("stage", ALL_STAGES, ids=STAGE_IDS)
def test_stage_tracks_every_result_changing_key_of_its_section(stage: StageInfo) -> None:
    path = params_file(stage)
    section = read_yaml(REPO / path).get(stage.section)
    assert isinstance(section, dict), f"{path} has no section {stage.section!r} for stage {stage.name}"
    tracked = stage.params.get(path, frozenset())
    expected = expected_params(stage, section)
    assert set(tracked) == expected, (
        f"{stage.pipeline}:{stage.name} tracks the wrong keys of {path}: "
        f"missing {sorted(expected - tracked)}, extra {sorted(tracked - expected)}"
    )
    assert set(stage.params) <= {path}, f"{stage.name} also tracks {sorted(set(stage.params) - {path})}"


@pytest.mark.parametrize("stage", ALL_STAGES, ids=STAGE_IDS)
def test_params_yaml_spells_out_every_result_changing_field(stage: StageInfo) -> None:
    """Every params key is a config field, and every result-changing field is in params.yaml."""
    cls = config_class(command_of(stage))
    fields = {f.name for f in dataclasses.fields(cls)}
    section = dict(read_yaml(REPO / params_file(stage))[stage.section])
    given = cmd_options(stage)
    if "arm" in given:
        arms = section.pop("arms", {})
        assert given["arm"] in arms, f"{stage.name}: arm {given['arm']!r} is not in the section's arms"
        section.update(arms[given["arm"]])
    assert set(section) <= fields, f"{stage.name}: {sorted(set(section) - fields)} are not {cls.__name__} fields"
    unlisted = fields - set(section) - RESULT_NEUTRAL - set(given) - COMMAND_LINE_ONLY
    assert not unlisted, f"{stage.name}: result-changing {cls.__name__} fields missing from params: {sorted(unlisted)}"


def test_real_pipeline_has_no_synthetic_stages() -> None:
    names = {s.section for s in project_stages("real/dvc.yaml")}
    assert names == {"extract_teacher", "train_student", "compare_students"}
    compare = read_yaml(REPO / "real/params.yaml")["compare_students"]
    assert compare["teacher"] is None and compare["ceiling"] is None


# --- 2. the sweep: change every key, ask DVC which stages are dirty ------------------------------


def leaves(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of a section's values: nested mappings (``arms``) by their leaves; ``{}`` is a value."""
    found = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            found += leaves(value, (*prefix, key))
        else:
            found.append((*prefix, key))
    return found


def changed(value: Any) -> Any:
    """Another value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, max(value, default=0) + 1]
    if isinstance(value, dict):
        return {**value, "changed": 1}
    assert value is None, value
    return "changed"  # the null fields are str | None


def under(key: str, prefix: str) -> bool:
    """``key`` is ``prefix`` or lies under it (``a.b.c`` under ``a.b``, not under ``a.bc``)."""
    return key == prefix or key.startswith(prefix + ".")


def get_in(data: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def set_in(data: dict, path: tuple[str, ...], value: Any) -> None:
    get_in(data, path[:-1])[path[-1]] = value


def interpolated(pipeline: Path) -> dict[str, dict[str, set[str]]]:
    """``{stage definition: {"body": keys, "matrix": keys}}``: the params each ``${}`` of dvc.yaml reads."""
    refs = {}
    for name, definition in read_yaml(pipeline)["stages"].items():
        body = {k: v for k, v in definition.items() if k not in ("matrix", "foreach")}
        loops = {k: v for k, v in definition.items() if k in ("matrix", "foreach")}
        refs[name] = {
            part: {k for k in re.findall(r"\$\{\s*([\w.]+)\s*\}", yaml.safe_dump(d)) if not k.startswith("item.")}
            for part, d in (("body", body), ("matrix", loops))
        }
    return refs


def copy_project(dest: Path) -> Path:
    """This project's files (tracked and new, not ignored) in a fresh git repository, without its dvc.lock."""
    copy_project_files(dest)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def placeholder(path: Path) -> None:
    """A stand-in for an output or input: a file where the name has a suffix, else a folder with one file."""
    if path.exists():
        return
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("placeholder\n")
    else:
        path.mkdir(parents=True)
        (path / "placeholder").write_text("placeholder\n")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A copy of the project whose dvc.lock says every stage is up to date, without running one.

    Placeholder outputs (and inputs such as the dataset root), then ``dvc commit --force``, which
    records the current deps, params and outs in dvc.lock as if the stages had just run them.
    One seed, not the default's five, to keep the stages few; the real pipeline's dataset root
    moves into the scratch repository; and each section gets its command's result-neutral fields,
    so the sweep checks that they dirty nothing.
    """
    from dvc.repo import Repo

    root = copy_project(tmp_path_factory.mktemp("contract") / "project")
    for pipeline in PIPELINES:
        path = root / Path(pipeline).parent / "params.yaml"
        params = read_yaml(path)
        params["compare_students"]["seeds"] = [0]
        if pipeline == "real/dvc.yaml":
            params["extract_teacher"]["root"] = "data/ucf101"
        for stage in project_stages(pipeline):
            fields = {f.name: f for f in dataclasses.fields(config_class(command_of(stage)))}
            for key in sorted(RESULT_NEUTRAL & set(fields)):
                params[stage.section].setdefault(key, fields[key].default)
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    stages = [s for pipeline in PIPELINES for s in resolve_stages(root, pipeline)]
    for path in [p for s in stages for p in s.outs] + [p for s in stages for p in s.deps]:
        placeholder(path)
    for pipeline in PIPELINES:  # each pipeline is a DVC project of its own (real/: dvc init --subdir)
        project = (root / pipeline).parent
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(project)  # DVC's run cache resolves stage paths against the working directory
            with Repo(str(project)) as repo:
                repo.commit(force=True)
            with Repo(str(project)) as repo:
                assert repo.status() == {}, f"the scratch {pipeline} is not up to date after dvc commit --force"
    return root


def dirty(root: Path, pipeline: str, *, names: bool = False) -> tuple[dict[str, list], set[str] | None]:
    """DVC's status of one pipeline's stages (by stage name) and, with ``names``, the names of its stages now."""
    from dvc.repo import Repo

    with Repo(str((root / pipeline).parent)) as repo:  # the pipeline's own DVC project
        # keys are ``<dvc.yaml as seen from the working directory>:<stage>``, or the bare name
        status = {key.rpartition(":")[2]: value for key, value in repo.status().items()}
        return status, {s.name for s in repo.stage.collect()} if names else None


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_param_sweep_dirties_exactly_the_stages_that_depend_on_the_key(
    scratch: Path, pipeline: str, monkeypatch
) -> None:
    """Change every key of every section; DVC must dirty the stages the rule names, and no others.

    Expected, for key K of section S: the stages of S, unless K is result-neutral (none) or lies in
    ``arms.X`` (only arm X's stages); plus the stages whose dvc.yaml entry interpolates ``${S.K}``
    (a path: ``fit_teacher.out`` is extract_teacher's dep), and for a key the matrix reads
    (``compare_students.seeds``) the stages it adds.

    Keys that dvc.yaml interpolates change one at a time, since they change stage definitions.
    Every other key reaches a stage only through its ``params:`` list, and DVC's status names each
    tracked key that changed, so those change all at once and each key's stages are read off the
    report (a key that no stage lists dirties nothing, which the rule catches as well).
    """
    monkeypatch.chdir(scratch)
    params_path = scratch / Path(pipeline).parent / "params.yaml"
    params_rel = str(params_path.relative_to((scratch / pipeline).parent))  # as its DVC project names it
    original = params_path.read_text()
    params = read_yaml(params_path)
    refs = interpolated(scratch / pipeline)
    before = {s.name: s for s in resolve_stages(scratch, pipeline)}
    sections = sorted({s.section for s in before.values()})
    keys = [(section, path) for section in sections for path in leaves(params[section])]
    assert len(keys) > 20

    def expected(section: str, path: tuple[str, ...], names: set[str]) -> set[str]:
        dotted = ".".join((section, *path))
        found = set()
        for name in names:
            stage = before.get(name)
            definition = refs[name.split("@")[0]]
            if stage is None:  # a stage the change added (a new seed of the matrix)
                if any(under(dotted, k) for k in definition["matrix"]):
                    found.add(name)
                continue
            if any(under(dotted, k) for k in definition["body"]):
                found.add(name)
            if stage.section != section or path[0] in RESULT_NEUTRAL:
                continue
            if path[0] == "arms" and cmd_options(stage).get("arm") != path[1]:
                continue
            if cmd_options(stage).get(path[0]) is not None:  # the cmd line sets it (finetune's --init)
                continue
            found.add(name)
        return found

    def is_interpolated(section: str, path: tuple[str, ...]) -> bool:
        dotted = ".".join((section, *path))
        return any(
            under(dotted, k) or under(k, dotted)
            for definition in refs.values()
            for part in definition.values()
            for k in part
        )

    # Every key that dvc.yaml does not interpolate, at once: in one batch, unless two lie under one
    # tracked key (``arms``, were it tracked whole), whose report could not tell them apart.
    tracked = {key for s in before.values() for key in s.params.get(params_rel, ())}
    batches: list[list[tuple[str, tuple[str, ...]]]] = []
    owners: list[set[str]] = []
    for section, path in [k for k in keys if not is_interpolated(*k)]:
        owner = {t for t in tracked if under(".".join((section, *path)), t)}
        i = next((i for i, taken in enumerate(owners) if not owner & taken), len(batches))
        if i == len(batches):
            batches.append([])
            owners.append(set())
        batches[i].append((section, path))
        owners[i] |= owner
    wrong = {}
    for batch in batches:
        edited = read_yaml(params_path)
        for section, path in batch:
            set_in(edited[section], path, changed(get_in(edited[section], path)))
        params_path.write_text(yaml.safe_dump(edited, sort_keys=False))
        try:
            status, _ = dirty(scratch, pipeline)
        finally:
            params_path.write_text(original)
        reported: dict[str, set[str]] = {}
        for name, entries in status.items():
            for entry in entries:
                assert set(entry) == {"changed deps"}, f"{name}: more than params changed: {entry}"
                assert set(entry["changed deps"]) == {params_rel}, f"{name}: {entry}"
                for key in entry["changed deps"][params_rel]:
                    reported.setdefault(key, set()).add(name)
        names = set(before)  # only the matrix makes names, and it reads interpolated keys alone
        for section, path in batch:
            dotted = ".".join((section, *path))
            got = set().union(*[v for k, v in reported.items() if under(dotted, k)])
            if got != expected(section, path, names):
                wrong[dotted] = {"dirtied": sorted(got), "expected": sorted(expected(section, path, names))}
    assert not wrong, f"{pipeline}: keys that dirty the wrong stages: {wrong}"

    # Each interpolated key alone.
    for section, path in [k for k in keys if is_interpolated(*k)]:
        dotted = ".".join((section, *path))
        loop = any(under(dotted, k) or under(k, dotted) for d in refs.values() for k in d["matrix"])
        edited = read_yaml(params_path)
        set_in(edited[section], path, changed(get_in(edited[section], path)))
        params_path.write_text(yaml.safe_dump(edited, sort_keys=False))
        try:
            status, now = dirty(scratch, pipeline, names=loop)
        finally:
            params_path.write_text(original)
        want = expected(section, path, now or set(before))
        assert set(status) == want, f"{pipeline}: {dotted} dirtied {sorted(status)}, not {sorted(want)}"
    assert dirty(scratch, pipeline)[0] == {}


# --- 3. the import closure of each stage's command against its deps ------------------------------


def module_file(name: str) -> Path | None:
    """The file of project module ``name`` (a package's ``__init__.py``), or None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = REPO.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _is_call(node: ast.AST, attr: str) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == attr


def imported_modules(name: str, path: Path) -> list[str]:
    """Names module ``name`` (file ``path``) imports: statements anywhere (functions included), literal
    ``importlib.import_module("...")``, and every module of its package where it discovers modules
    with ``pkgutil.iter_modules`` (pipeline/datasets/registry.py finds the dataset adapters so)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # parent packages
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif _is_call(node, "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            found.append(node.args[0].value)
        elif _is_call(node, "iter_modules"):
            found += [f"{package}.{p.stem}" for p in path.parent.glob("*.py")]
            found += [f"{package}.{p.parent.name}" for p in path.parent.glob("*/__init__.py")]
    return found


@functools.cache
def closure(entry: str) -> frozenset[Path]:
    """The project files module ``entry`` imports, transitively (``entry`` included)."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += imported_modules(name, path)
    return frozenset(seen)


def covered(path: Path, deps: tuple[Path, ...]) -> bool:
    return any(path == dep or dep in path.parents for dep in deps)


def code_deps(stage: StageInfo) -> list[Path]:
    return [d for d in stage.deps if d.is_relative_to(REPO) and d.relative_to(REPO).parts[0] in PACKAGES]


@pytest.mark.parametrize("stage", ALL_STAGES, ids=STAGE_IDS)
def test_deps_cover_every_module_the_command_imports(stage: StageInfo) -> None:
    entry = console_scripts()[stage.cmd[0]].partition(":")[0]
    modules = closure(entry)
    assert module_file(entry) in modules and len(modules) > 3
    missing = sorted(str(m.relative_to(REPO)) for m in modules if not covered(m, stage.deps))
    assert not missing, f"{stage.pipeline}:{stage.name} ({stage.cmd[0]}) imports modules its deps miss: {missing}"


@pytest.mark.parametrize("stage", ALL_STAGES, ids=STAGE_IDS)
def test_deps_exist_and_every_code_dep_is_imported(stage: StageInfo) -> None:
    """A dep inside the repository that no stage writes must exist (a renamed module left behind);
    a code dep that the command never imports only reruns the stage for nothing."""
    outs = tuple(o for s in project_stages(stage.pipeline) for o in s.outs)
    absent = [
        str(d.relative_to(REPO))
        for d in stage.deps
        if d.is_relative_to(REPO)
        and not d.exists()
        and not covered(d, outs)
        and not any(covered(o, (d,)) for o in outs)
    ]
    assert not absent, f"{stage.pipeline}:{stage.name} depends on files that do not exist: {absent}"
    modules = closure(console_scripts()[stage.cmd[0]].partition(":")[0])
    unused = [str(d.relative_to(REPO)) for d in code_deps(stage) if not any(covered(m, (d,)) for m in modules)]
    assert not unused, f"{stage.pipeline}:{stage.name}: deps its command never imports: {unused}"


#: Couplings that must stay cut: editing the left module must not rerun the stages on the right.
CUT = {
    "teacher_extract/fit.py": ("extract_teacher", "extract_pool"),
    "pipeline/live.py": ("extract_teacher", "extract_pool"),
    "pipeline/autotune.py": ("train_student", "pretrain_student", "finetune_student", "fit_teacher"),
}


@pytest.mark.parametrize("module", sorted(CUT))
def test_editing_a_module_does_not_rerun_stages_that_have_no_use_for_it(module: str) -> None:
    """fit-teacher's code is not extraction's (it reads two facts of a checkpoint, in their own
    module), and the precision autotuner is extraction's alone: the import closures, which the
    deps must equal (above), keep them apart."""
    for stage in ALL_STAGES:
        if stage.name.split("@")[0] in CUT[module]:
            assert not covered(REPO / module, stage.deps), f"{stage.pipeline}:{stage.name} depends on {module}"


def test_closure_follows_imports_inside_functions_and_discovered_modules() -> None:
    files = {str(p.relative_to(REPO)) for p in closure("teacher_extract.cli")}
    assert "pipeline/datasets/ucf101.py" in files  # found by the registry, never imported by name
    assert "pipeline/datasets/registry.py" in files
    assert not any(f.startswith("student_train/") for f in files)  # stage one never imports stage two


# --- 4. the protocol: the scored split is read once, by compare-students ---------------------


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_no_stage_before_compare_students_reads_the_scored_split(pipeline: str) -> None:
    """Every student run on the compared cache evaluates (curves, final metrics) on another split.

    The runs themselves record what they read (``splits_read``, checked in test_dvc_pipeline and
    refused by compare-students); this is the same rule read off the params, before anything runs.
    """
    from student_train.train import apply_arm

    params = read_yaml(REPO / Path(pipeline).parent / "params.yaml")
    compared = params["compare_students"]
    runs = [s for s in project_stages(pipeline) if s.cmd[0] == "train-student"]
    assert runs
    for stage in runs:
        section = apply_arm(params[stage.section], cmd_options(stage).get("arm"))
        if section["cache"] == compared["cache"]:
            assert section["eval_split"] != compared["split"], (
                f"{pipeline}:{stage.name} evaluates on {compared['split']}"
            )
    assert [s.name for s in project_stages(pipeline) if s.cmd[0] == "compare-students"] == ["compare_students"]
