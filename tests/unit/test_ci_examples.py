"""The CI examples (examples/ci/) and the published .pre-commit-hooks.yaml, as a site would use
them: they parse; every factoryctl command line they run is one the real CLI accepts; the
shell around plan and drift turns exit codes into what the README promises (plan's 2 keeps the
job green, drift's 2 and 1 fail it with different messages); reports land where the pipelines
publish them; and drift runs only nightly / on demand, one at a time per site."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from factoryctl.cli import UsageError, app, run
from tests.helpers import REFERENCE

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
PRECOMMIT = CI / "pre-commit-config.yaml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
ALL_FILES = [GITHUB, GITLAB, PRECOMMIT, HOOKS]

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is needed to run the pipeline scripts")


def load(path: Path):
    return yaml.safe_load(path.read_text())


def gh_triggers(wf: dict) -> dict:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean true; GitHub reads it as "on".
    return wf["on"] if "on" in wf else wf[True]


def gh_step(job: dict, step_id: str | None = None, name: str | None = None) -> dict:
    for step in job["steps"]:
        if (step_id and step.get("id") == step_id) or (name and step.get("name") == name):
            return step
    raise AssertionError(f"no step {step_id or name!r}")


def gitlab_jobs(doc: dict) -> dict[str, dict]:
    return {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v and not k.startswith(".")}


def flatten(items) -> list[str]:
    """GitLab script lists may nest (YAML anchors); GitLab flattens them."""
    if isinstance(items, str):
        return [items]
    return [s for item in (items or []) for s in flatten(item)]


# --- finding the factoryctl command lines ------------------------------------------------------

SEPARATORS = {";", ";;", "&", "&&", "|", "||", "(", ")"}
KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}"}


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script as words, redirections dropped: enough to find
    each command a pipeline runs, and with what arguments."""
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        try:
            tokens = list(lex)
        except ValueError:  # an unterminated quote: a line of a multi-line string, not a command
            continue
        current: list[str] = []
        skip_next = False
        for tok in tokens:
            if skip_next:
                skip_next = False
            elif tok in SEPARATORS:
                commands.append(current)
                current = []
            elif set(tok) <= set("<>&|") and ("<" in tok or ">" in tok):
                if current and current[-1].isdigit():
                    current.pop()  # the descriptor of `2>file`
                skip_next = True
            elif not current and (tok in KEYWORDS or re.match(r"^[A-Za-z_]\w*=", tok)):
                continue
            else:
                current.append(tok)
        commands.append(current)
    return [c for c in commands if c]


def invocations() -> list[tuple[str, list[str]]]:
    """(where, argv after `factoryctl`) for every factoryctl command in the examples."""
    found: list[tuple[str, list[str]]] = []

    def from_script(where: str, script: str) -> None:
        found.extend((where, cmd[1:]) for cmd in simple_commands(script) if cmd[0] == "factoryctl")

    for job_name, job in load(GITHUB)["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                from_script(f"github:{job_name}", step["run"])
    for job_name, job in gitlab_jobs(load(GITLAB)).items():
        for key in ("before_script", "script", "after_script"):
            for script in flatten(job.get(key)):
                from_script(f"gitlab:{job_name}", script)
    hooks = [(PRECOMMIT.name, h) for repo in load(PRECOMMIT)["repos"] for h in repo["hooks"]]
    hooks += [(HOOKS.name, h) for h in load(HOOKS)]
    for where, hook in hooks:
        argv = shlex.split(hook["entry"]) + list(hook.get("args", []))
        if hook.get("pass_filenames", True):
            argv.append("factory.yaml")  # what pre-commit appends: the one file `files` matches
        if argv[0] == "factoryctl":
            found.append((f"{where}:{hook['id']}", argv[1:]))
    return found


def parse(argv: list[str]):
    """The click context the real CLI builds for `factoryctl argv` (raises UsageError)."""
    group = get_command(app)
    root = group.make_context("factoryctl", list(argv))
    command = group.get_command(root, argv[0])
    assert command is not None, f"factoryctl has no subcommand {argv[0]!r}"
    return command.make_context(argv[0], list(argv[1:]), parent=root)


def help_options(capsys, sub: str) -> set[str]:
    rc = run([sub, "--help"])
    text = capsys.readouterr().out
    assert rc == 0, f"`factoryctl {sub} --help` exited {rc}"
    names: set[str] = set()
    for line in text.splitlines():
        words = line.strip(" │|").split()
        while words and words[0].startswith("-"):
            names.update(w for w in words[0].split(",") if w)
            words.pop(0)
    return names


def drift_params(where_prefix: str):
    found = [parse(argv).params for where, argv in invocations()
             if where.startswith(where_prefix) and argv[0] == "drift"]
    assert found, f"no factoryctl drift in {where_prefix}"
    return found


# --- (a) every file parses -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_file_parses_as_yaml(path):
    doc = load(path)
    assert doc, f"{path} is empty"


def test_github_workflow_has_the_three_jobs_and_its_triggers():
    wf = load(GITHUB)
    assert {"validate", "plan", "drift"} <= set(wf["jobs"])
    assert {"pull_request", "push", "schedule", "workflow_dispatch"} <= set(gh_triggers(wf))
    assert wf["env"]["CHECKPOINT_DISABLE"] == "1"


def test_gitlab_pipeline_has_the_three_stages():
    doc = load(GITLAB)
    jobs = gitlab_jobs(doc)
    assert doc["stages"] == ["validate", "plan", "drift"]
    assert {j["stage"] for j in jobs.values()} == {"validate", "plan", "drift"}
    assert doc["variables"]["CHECKPOINT_DISABLE"] == "1"


def test_actions_are_pinned_by_major_version():
    for job in load(GITHUB)["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]


# --- (b) every factoryctl command line is one the CLI accepts --------------------------------------

def test_examples_use_the_commands_the_brief_needs():
    used = {(where.split(":")[0], argv[0]) for where, argv in invocations()}
    for where in ("github", "gitlab"):
        assert {(where, s) for s in ("validate", "render", "plan", "drift")} <= used
    assert {(PRECOMMIT.name, "validate"), (PRECOMMIT.name, "render")} <= used
    assert {(HOOKS.name, "validate"), (HOOKS.name, "render")} <= used


@pytest.mark.parametrize("where,argv", invocations(), ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_factoryctl_command_line_is_accepted_by_the_cli(capsys, where, argv):
    sub = argv[0]
    known = help_options(capsys, sub)
    used = {a.split("=", 1)[0] for a in argv[1:] if a.startswith("-")}
    assert used <= known, f"{where}: `factoryctl {' '.join(argv)}` uses {sorted(used - known)}, " \
                          f"not in `factoryctl {sub} --help`"
    try:
        ctx = parse(argv)
    except UsageError as e:
        pytest.fail(f"{where}: `factoryctl {' '.join(argv)}` is rejected: {e.format_message()}")
    assert ctx.params["file"] == Path("factory.yaml"), f"{where}: checks {ctx.params['file']}, not factory.yaml"


def test_ci_asks_for_the_machine_readable_outputs_it_publishes():
    for where in ("github", "gitlab"):
        params: dict[str, list[dict]] = {}
        for w, argv in invocations():
            if w.startswith(where):
                params.setdefault(argv[0], []).append(parse(argv).params)
        assert any(p["fmt"].value == "sarif" for p in params["validate"])
        assert all(p["check_only"] for p in params["render"])  # CI never writes the tree
        assert all(p["detailed_exitcode"] and p["fmt"].value == "json" for p in params["plan"])
        assert all(p["junit"] and p["sarif"] for p in params["drift"])


def test_github_publishes_the_reports_drift_writes():
    wf = load(GITHUB)
    job = wf["jobs"]["drift"]
    for params in drift_params("github"):
        junit = [s for s in job["steps"] if "action-junit-report" in s.get("uses", "")]
        assert junit and junit[0]["with"]["report_paths"] == str(params["junit"])
        sarif = [s for s in job["steps"] if "upload-sarif" in s.get("uses", "")]
        assert sarif and sarif[0]["with"]["sarif_file"] == str(params["sarif"])
        artifact = [s for s in job["steps"] if "upload-artifact" in s.get("uses", "")]
        kept = artifact[0]["with"]["path"].split()
        assert {str(params["junit"]), str(params["sarif"]), "drift-run/"} <= set(kept)
    validate = wf["jobs"]["validate"]
    upload = [s for s in validate["steps"] if "upload-sarif" in s.get("uses", "")]
    assert upload and upload[0]["with"]["sarif_file"] == "validate.sarif"


# --- (c) the GitHub workflow -------------------------------------------------------------------------

def test_github_drift_runs_nightly_and_on_demand_on_the_site_runner():
    wf = load(GITHUB)
    crons = [s["cron"] for s in gh_triggers(wf)["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    job = wf["jobs"]["drift"]
    assert "schedule" in job["if"] and "workflow_dispatch" in job["if"]
    assert "pull_request" not in job["if"] and "push" not in job["if"]
    assert "self-hosted" in job["runs-on"] and "factory-mgmt" in job["runs-on"]
    # the schedule that asks for --full must be one of the crons, or it never fires
    full_crons = re.findall(r"github\.event\.schedule == '([^']+)'", job["env"]["FULL"])
    assert full_crons and set(full_crons) <= set(crons)


def test_github_drift_runs_are_serialised_per_site():
    job = load(GITHUB)["jobs"]["drift"]
    group = job["concurrency"]["group"]
    assert job["concurrency"]["cancel-in-progress"] is False  # a queued drift never kills an apply
    for per_run in ("run_id", "run_number", "github.sha", "github.ref", "pull_request"):
        assert per_run not in group, f"the group must name the site, not the run ({per_run})"


def test_github_plan_runs_on_pull_requests_of_this_repository_only():
    job = load(GITHUB)["jobs"]["plan"]
    assert "pull_request" in job["if"]
    assert "head.repo.full_name == github.repository" in job["if"]  # never fork code on a self-hosted runner


FAKE_FACTORYCTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_LOG"
if [ "$1" = drift ] && [ -n "${FAKE_RUN:-}" ]; then
  sleep 0.05
  mkdir -p "$FAKE_RUN"
  printf '{\\n  "kind": "drift"\\n}\\n' > "$FAKE_RUN/run.json"
  echo '{}' > "$FAKE_RUN/drift.json"
fi
echo "fake report of factoryctl $1"
exit "${FAKE_RC:-0}"
"""


def run_script(script: str, tmp_path: Path, fake_rc: int, extra_env: dict | None = None,
               shell: tuple[str, ...] = ("--noprofile", "--norc", "-eo", "pipefail")):
    """Run one pipeline script in tmp_path with a fake factoryctl that exits `fake_rc`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "factoryctl"
    fake.write_text(FAKE_FACTORYCTL)
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    temp = tmp_path / "runner-temp"
    temp.mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "FAKE_RC": str(fake_rc),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "GITHUB_OUTPUT": str(tmp_path / "github-output"),
        "RUNNER_TEMP": str(temp),
        "FACTORYCTL_VERSION": "0.1.0",
        **(extra_env or {}),
    }
    p = subprocess.run([BASH, *shell, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                       timeout=60)
    return p, work


def outputs(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "github-output"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)


@needs_bash
@pytest.mark.parametrize("rc,job_passes", [(0, True), (2, True), (1, False), (64, False)])
def test_github_plan_step_fails_only_when_plan_failed(tmp_path, rc, job_passes):
    step = gh_step(load(GITHUB)["jobs"]["plan"], step_id="plan")
    assert "continue-on-error" not in step  # the script itself must get exit 2 right
    p, work = run_script(step["run"], tmp_path, rc)
    assert (p.returncode == 0) is job_passes, p.stdout + p.stderr
    assert outputs(tmp_path)["rc"] == str(rc)
    assert (work / "plan.json").is_file()


@needs_bash
@pytest.mark.parametrize("rc,message", [(0, "In sync"), (2, "Site drifted"), (1, "Could not check drift")])
def test_github_drift_publishes_reports_then_fails_on_drift_or_could_not_check(tmp_path, rc, message):
    wf = load(GITHUB)
    job = wf["jobs"]["drift"]
    state = tmp_path / "state"
    old_run = state / "fra2" / "runs" / "20200101T000000Z"
    old_run.mkdir(parents=True)
    (old_run / "run.json").write_text('{\n  "kind": "drift"\n}\n')
    past = time.time() - 3600
    os.utime(old_run, (past, past))
    env = {"FACTORY_STATE_DIR": str(state), "FULL": "false", "FAKE_RUN": str(state / "fra2" / "runs" / "20260101T000000Z")}

    p, work = run_script(gh_step(job, step_id="drift")["run"], tmp_path, rc, env)
    assert p.returncode == 0, p.stdout + p.stderr  # the reports are published whatever drift found
    assert outputs(tmp_path)["rc"] == str(rc)
    assert "fake report of factoryctl drift" in (work / "drift.txt").read_text()
    assert sorted(x.name for x in (work / "drift-run").iterdir()) == ["20260101T000000Z"]  # this run only
    assert "--full" not in (tmp_path / "calls.log").read_text()

    verdict = gh_step(job, name="Verdict")
    p, _ = run_script(verdict["run"], tmp_path, 0, {"RC": outputs(tmp_path)["rc"]})
    assert (p.returncode == 0) is (rc == 0)
    assert message in p.stdout

    issue = gh_step(job, name="Open or update the drift issue")
    assert "steps.drift.outputs.rc == '2'" in issue["if"]
    for step in job["steps"]:
        if "uses" in step and any(k in step["uses"] for k in ("junit", "sarif", "upload-artifact")):
            assert "!cancelled()" in step.get("if", ""), f"{step['uses']} must run when drift failed the job"


@needs_bash
def test_github_full_drift_when_asked(tmp_path):
    step = gh_step(load(GITHUB)["jobs"]["drift"], step_id="drift")
    run_script(step["run"], tmp_path, 0, {"FACTORY_STATE_DIR": str(tmp_path / "state"), "FULL": "true"})
    assert "--full" in (tmp_path / "calls.log").read_text()


@needs_bash
@pytest.mark.parametrize("rc,passes", [(0, True), (2, False), (1, False)])
def test_github_render_check_fails_on_a_stale_tree(tmp_path, rc, passes):
    step = gh_step(load(GITHUB)["jobs"]["validate"], name="Rendered tree is up to date")
    p, _ = run_script(step["run"], tmp_path, rc)
    assert (p.returncode == 0) is passes


# --- (d) the GitLab pipeline -------------------------------------------------------------------------

def gitlab_rule_matches(expr: str, env: dict[str, str]) -> bool:
    """GitLab's `rules: if:` for the forms the example uses: ==, !=, bare variables, && and ||."""
    def value(term: str) -> str:
        term = term.strip()
        if term.startswith("$"):
            return env.get(term[1:], "")
        return term.strip("\"'")

    def atom(a: str) -> bool:
        m = re.fullmatch(r"\s*(\S+)\s*(==|!=)\s*(\S+)\s*", a)
        if m:
            equal = value(m.group(1)) == value(m.group(3))
            return equal if m.group(2) == "==" else not equal
        return bool(value(a))

    return any(all(atom(a) for a in alt.split("&&")) for alt in expr.split("||"))


def gitlab_runs(job: dict, env: dict[str, str]) -> bool:
    for rule in job.get("rules", [{}]):
        if "if" not in rule or gitlab_rule_matches(rule["if"], env):
            return rule.get("when", "on_success") != "never"
    return False


SOURCES = ["push", "merge_request_event", "schedule", "web", "api", "trigger", "pipeline"]


def test_gitlab_drift_runs_only_on_schedules_and_manual_web_runs():
    job = gitlab_jobs(load(GITLAB))["drift"]
    ran = {s for s in SOURCES if gitlab_runs(job, {"CI_PIPELINE_SOURCE": s, "CI_COMMIT_BRANCH": "main",
                                                     "CI_DEFAULT_BRANCH": "main"})}
    assert ran == {"schedule", "web"}


def test_gitlab_validate_and_plan_run_on_merge_requests():
    jobs = gitlab_jobs(load(GITLAB))
    env = {"CI_DEFAULT_BRANCH": "main"}
    assert gitlab_runs(jobs["validate"], {**env, "CI_PIPELINE_SOURCE": "merge_request_event"})
    assert gitlab_runs(jobs["validate"], {**env, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main"})
    assert not gitlab_runs(jobs["validate"], {**env, "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main"})
    assert gitlab_runs(jobs["plan"], {**env, "CI_PIPELINE_SOURCE": "merge_request_event"})
    assert not gitlab_runs(jobs["plan"], {**env, "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main"})


def test_gitlab_drift_reports_junit_even_when_it_fails_the_job():
    job = gitlab_jobs(load(GITLAB))["drift"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"  # drift fails the job: the reports must still be kept
    for params in drift_params("gitlab"):
        assert artifacts["reports"]["junit"] == str(params["junit"])
        assert {str(params["sarif"]), "drift-run/"} <= set(artifacts["paths"])


def test_gitlab_drift_is_serialised_and_runs_on_the_site_runner():
    job = gitlab_jobs(load(GITLAB))["drift"]
    assert job["resource_group"].startswith("factory-")
    assert "factory-mgmt" in job["tags"]
    assert not job.get("allow_failure")  # drift must be visible as a failed pipeline


@needs_bash
@pytest.mark.parametrize("rc,passes,message", [(0, True, "In sync"), (2, False, "DRIFT"),
                                                (1, False, "COULD NOT CHECK")])
def test_gitlab_drift_fails_with_a_message_per_exit_code(tmp_path, rc, passes, message):
    job = gitlab_jobs(load(GITLAB))["drift"]
    state = tmp_path / "state"
    env = {"FACTORY_STATE_DIR": str(state), "FAKE_RUN": str(state / "fra2" / "runs" / "20260101T000000Z")}
    p, work = run_script("\n".join(flatten(job["script"])), tmp_path, rc, env, shell=("-eo", "pipefail"))
    assert (p.returncode == 0) is passes, p.stdout + p.stderr
    assert message in p.stdout
    other = {"DRIFT", "COULD NOT CHECK"} - {message}
    assert not any(o in p.stdout for o in other)
    assert (work / "drift-run" / "20260101T000000Z" / "drift.json").is_file()


@needs_bash
@pytest.mark.parametrize("rc,passes", [(0, True), (2, True), (1, False)])
def test_gitlab_plan_fails_only_when_plan_failed(tmp_path, rc, passes):
    job = gitlab_jobs(load(GITLAB))["plan"]
    p, work = run_script("\n".join(flatten(job["script"])), tmp_path, rc, shell=("-eo", "pipefail"))
    assert (p.returncode == 0) is passes, p.stdout + p.stderr
    assert (work / "plan.json").is_file()


# --- pre-commit ------------------------------------------------------------------------------------

CANDIDATES = ["factory.yaml", "sites/b/factory.yaml", "factory.yaml.orig", "rendered/manifest.json",
              "rendered/slurm/slurm.conf", "README.md"]


def all_hooks() -> list[tuple[str, dict]]:
    hooks = [(PRECOMMIT.name, h) for repo in load(PRECOMMIT)["repos"] for h in repo["hooks"]]
    assert all(repo["repo"] == "local" for repo in load(PRECOMMIT)["repos"])
    return hooks + [(HOOKS.name, h) for h in load(HOOKS)]


def test_precommit_hook_kinds():
    for where, hook in all_hooks():
        expected = "system" if where == PRECOMMIT.name else "python"
        assert hook["language"] == expected, f"{where}:{hook['id']}"
    published = {hook["id"] for where, hook in all_hooks() if where == HOOKS.name}
    assert published == {"factoryctl-validate", "factoryctl-render-check"}


def test_hooks_that_pass_filenames_match_one_file_at_most():
    """validate takes exactly one FILE: pre-commit must never hand it two."""
    for where, hook in all_hooks():
        matches = [c for c in CANDIDATES if re.search(hook["files"], c)]
        assert "factory.yaml" in matches, f"{where}:{hook['id']} does not run on factory.yaml"
        if hook.get("pass_filenames", True):
            assert matches == ["factory.yaml"], f"{where}:{hook['id']} would pass {matches}"


def test_render_check_hooks_also_run_when_the_rendered_tree_changes():
    for where, hook in all_hooks():
        if "render" in hook["entry"]:
            assert re.search(hook["files"], "rendered/slurm/slurm.conf"), f"{where}:{hook['id']}"


@pytest.mark.parametrize("where,argv", [(w, a) for w, a in invocations() if a[0] == "render"],
                         ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_render_check_passes_on_a_fresh_tree_fails_on_a_stale_one_and_writes_nothing(
        tmp_path, monkeypatch, capsys, where, argv):
    """What the hooks and CI steps promise: exit 0 when rendered/ is current, 2 when it is
    stale, and the check never writes the tree."""
    shutil.copy(REFERENCE, tmp_path / "factory.yaml")
    monkeypatch.chdir(tmp_path)
    out = parse(argv).params["out_dir"]
    assert run(["render", "factory.yaml", "--out", str(out)]) == 0
    assert run(argv) == 0, f"{where}: fresh tree"
    victim = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")[0]
    victim.write_text(victim.read_text() + "# edited by hand\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert run(argv) == 2, f"{where}: stale tree"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / ".factory").exists()
    capsys.readouterr()
