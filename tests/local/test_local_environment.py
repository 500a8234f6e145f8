"""What a step's process sees: PATH, HOME, LANG, TZ, TMPDIR, META_* and its own `env`, nothing
else of meta's environment; variables `fromEnv` and from `--secret`; and no secret value in
anything meta writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from meta.flow.model import FromEnv, SecretRef
from meta.local.environment import Secrets, digested
from tests.local.runs import Env, report, step

SECRET = "s3cr3t-Value-9b1e"
DUMP = (
    "import json, os\n"
    "open(os.path.join(os.environ['META_OUTPUT'], 'env.json'), 'w')"
    ".write(json.dumps(dict(os.environ)))\n"
)
ALLOWED = {"PATH", "HOME", "LANG", "TZ", "TMPDIR"}


def dumped(workdir: Path, unit: str) -> dict[str, str]:
    found: dict[str, str] = json.loads(
        (workdir / "store" / unit / "@outputs" / "env.json").read_text()
    )
    return found


def test_a_step_sees_only_the_base_its_meta_variables_and_what_it_declares(env: Env) -> None:
    env.script("dump.py", DUMP)
    declared = {
        "GREETING": "hello {{ inputs.who }}",
        "FROM_OUTSIDE": {"fromEnv": "OUTSIDE_VISIBLE"},
    }
    flow = env.flow(
        "clean",
        {"name": "s", "run": {**step("s", "dump.py")["run"], "env": declared}},
        inputs={"who": {"value": "world"}},
    )
    os.environ["OUTSIDE_VISIBLE"] = "taken"
    os.environ["OUTSIDE_HIDDEN"] = "leaked"
    try:
        result = env.meta("run", str(flow), "--workdir", "w")
    finally:
        del os.environ["OUTSIDE_VISIBLE"], os.environ["OUTSIDE_HIDDEN"]
    assert result.returncode == 0, result.stderr
    seen = dumped(env.root / "w", "clean/s")
    own = {k for k in seen if not k.startswith("META_")}
    # T_PIDS and T_LOG: every test step takes them fromEnv (tests/local/runs.py).
    assert own == ALLOWED | {"GREETING", "FROM_OUTSIDE", "T_PIDS", "T_LOG"}
    assert seen["GREETING"] == "hello world"
    assert seen["FROM_OUTSIDE"] == "taken"
    assert seen["TZ"] and seen["LANG"] and seen["TMPDIR"] and seen["HOME"]
    assert seen["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert {"META_UNIT_ID", "META_INPUT", "META_OUTPUT", "META_UPSTREAM", "META_SCRATCH"} <= set(
        seen
    )


def test_a_variable_from_an_environment_variable_that_is_not_there(env: Env) -> None:
    flow = env.flow(
        "missing",
        {"name": "s", "run": {"command": ["true"], "env": {"X": {"fromEnv": "NOT_SET_ANYWHERE"}}}},
    )
    result = env.meta("run", str(flow), "--workdir", "w")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "/spec/root/run/env/X: fromEnv: NOT_SET_ANYWHERE is not in meta's environment"
    )
    assert not (env.root / "w").exists()


def secret_flow(env: Env, fail: bool) -> Path:
    # The step checks its secret and, failing, prints it to stderr: the report's stderr tail
    # and meta's error lines must not carry it.
    check = (
        "import os, sys\n"
        f"ok = os.environ['TOKEN'] == {SECRET!r} and os.environ['KEY2'] == 'second-key-value'\n"
        "open(os.path.join(os.environ['META_OUTPUT'], 'ok'), 'w').write(str(ok))\n"
        # A result holding the secret: the journal and the report keep it masked.
        "import json\n"
        "auth = {'auth': 'Bearer ' + os.environ['TOKEN']}\n"
        "open(os.environ['META_RESULT'], 'w').write(json.dumps(auth))\n"
        f"if {fail!r}:\n"
        "    sys.stderr.write('token was ' + os.environ['TOKEN'] + '\\n')\n"
        "    sys.exit(3)\n"
    )
    env.script("check.py", check)
    variables = {
        "TOKEN": {"secretRef": {"name": "api", "key": "token"}},
        "KEY2": {"secretRef": {"name": "folder", "key": "two"}},
    }
    command = step("c", "check.py")["run"]["command"]
    return env.flow("secrets", {"name": "s", "run": {"command": command, "env": variables}})


def test_secrets_come_from_files_variables_or_folders_and_are_written_nowhere(
    env: Env,
) -> None:
    flow = secret_flow(env, fail=False)
    folder = env.root / "mounted"
    folder.mkdir()
    (folder / "two").write_text("second-key-value")
    os.environ["API_TOKEN_FOR_TEST"] = SECRET
    try:
        result = env.meta(
            "run", str(flow), "--workdir", "w",
            "--secret", "api/token=env:API_TOKEN_FOR_TEST",
            "--secret", f"folder=@{folder}",
        )  # fmt: skip
    finally:
        del os.environ["API_TOKEN_FOR_TEST"]
    assert result.returncode == 0, result.stderr
    workdir = env.root / "w"
    assert (workdir / "store/secrets/s/@outputs/ok").read_text() == "True"
    assert report(workdir)["result"] == {"auth": "Bearer ***"}
    assert SECRET not in result.stdout + result.stderr
    for path in workdir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_failing_step_printing_its_secret_leaves_it_out_of_the_report(env: Env) -> None:
    flow = secret_flow(env, fail=True)
    (env.root / "token").write_text(SECRET)
    (env.root / "two").write_text("second-key-value")
    result = env.meta(
        "run", str(flow), "--workdir", "w",
        "--secret", "api/token=@token", "--secret", "folder/two=@two",
    )  # fmt: skip
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    assert "token was ***" in result.stderr
    workdir = env.root / "w"
    assert report(workdir)["error"]["stderrTail"] == "token was ***"
    logs = workdir / "logs"
    for path in workdir.rglob("*"):
        # The step's own stderr, kept as it wrote it, is its business; nothing else holds it.
        if path.is_file() and logs not in path.parents:
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_secret_not_given_stops_the_run_before_anything_runs(env: Env) -> None:
    flow = secret_flow(env, fail=False)
    result = env.meta("run", str(flow), "--workdir", "w", "--secret", "folder/two=@nowhere")
    assert result.returncode == 2
    assert result.stderr == "--secret: /folder/two: secret file nowhere not found\n"
    result = env.meta("run", str(flow), "--workdir", "w")
    assert result.returncode == 2
    assert "/spec/root/run/env/TOKEN: secret api/token is not given" in result.stderr
    result = env.meta("run", str(flow), "--workdir", "w", "--secret", f"api/token={SECRET}")
    assert result.returncode == 2
    assert "never inline" in result.stderr
    assert SECRET not in result.stderr
    assert not (env.root / "w").exists()


def test_resume_takes_the_secrets_again(env: Env) -> None:
    flow = secret_flow(env, fail=False)
    (env.root / "token").write_text(SECRET)
    (env.root / "two").write_text("second-key-value")
    given = ("--secret", "api/token=@token", "--secret", "folder/two=@two")
    first = env.meta("run", str(flow), "--workdir", "w", *given)
    assert first.returncode == 0, first.stderr
    assert SECRET not in (env.root / "w" / "run.json").read_text()
    again = env.meta("resume", "w")
    assert again.returncode == 2
    assert "secret api/token is not given" in again.stderr
    assert env.meta("resume", "w", *given).returncode == 0


def test_a_cache_key_sees_a_secret_only_by_its_digest() -> None:
    secrets = Secrets({("api", "token"): SECRET})
    ref = SecretRef("api", "token")
    assert digested("plain", {}, secrets) == "plain"
    shown = digested(ref, {}, secrets)
    assert shown.startswith("sha256:") and SECRET not in shown
    assert shown != digested(ref, {}, Secrets({("api", "token"): SECRET + "x"}))
    assert digested(FromEnv("V"), {"V": "1"}, secrets) == digested(
        FromEnv("V"), {"V": "1"}, Secrets()
    )


def test_masking_covers_a_tail_cut_inside_a_secret_and_leaves_short_values() -> None:
    secrets = Secrets({("a", "long"): SECRET, ("a", "short"): "ab"})
    assert secrets.redact(f"x {SECRET} y ab") == "x *** y ab"
    assert secrets.redact(SECRET[5:] + " then more") == "*** then more"
