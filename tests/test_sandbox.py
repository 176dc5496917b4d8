"""emd.sandbox: model-written code runs in a separate, limited process and is scored honestly."""

import time

import pytest

from emd.errors import ConfigError
from emd.sandbox import run_python

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"


def test_correct_code_passes():
    result = run_python(ADD, ADD_TESTS)
    assert result.passed and result.status == "passed"


def test_wrong_code_fails_with_the_assertion_in_stderr():
    result = run_python("def add(a, b):\n    return a - b\n", ADD_TESTS)
    assert not result.passed and result.status == "failed"
    assert "AssertionError" in result.stderr


def test_code_that_does_not_compile_is_an_error():
    result = run_python("def add(a, b)\n    return a + b\n", ADD_TESTS)
    assert not result.passed and result.status == "error"


def test_stdout_is_returned_without_the_completion_token():
    result = run_python("print('hello from the child')", "")
    assert result.passed and result.stdout.strip() == "hello from the child"


def test_writing_outside_its_directory_is_blocked_and_scored_failed(tmp_path):
    target = tmp_path / "escaped.txt"
    code = f"open({str(target)!r}, 'w').write('x')\n" + ADD
    result = run_python(code, ADD_TESTS)
    assert not result.passed and result.status == "blocked"
    assert not target.exists()
    assert "blocked open" in result.stderr


def test_relative_escape_and_removal_outside_are_blocked(tmp_path):
    assert run_python("open('../escaped.txt', 'w')", "").status == "blocked"
    victim = tmp_path / "keep.txt"
    victim.write_text("keep")
    result = run_python(f"import os\nos.remove({str(victim)!r})", "")
    assert result.status == "blocked" and victim.read_text() == "keep"
    result = run_python(f"import shutil\nshutil.rmtree({str(tmp_path)!r})", "")
    assert result.status == "blocked" and victim.exists()


def test_writing_inside_its_directory_is_allowed():
    code = "with open('scratch.txt', 'w') as f:\n    f.write('ok')\nimport os\nos.remove('scratch.txt')\n" + ADD
    assert run_python(code, ADD_TESTS).status == "passed"


def test_catching_the_refusal_does_not_help(tmp_path):
    target = tmp_path / "x.txt"
    code = f"try:\n    open({str(target)!r}, 'w')\nexcept BaseException:\n    pass\n" + ADD
    result = run_python(code, ADD_TESTS)
    assert result.status == "blocked" and not result.passed and not target.exists()


def test_infinite_loop_is_stopped_and_scored_failed():
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", "", timeout=1.0)
    assert not result.passed and result.status == "timeout"
    assert time.monotonic() - start < 10


def test_sleeping_forever_is_stopped_too():
    result = run_python("import time\ntime.sleep(3600)\n", "", timeout=1.0)
    assert result.status == "timeout"


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        "import socket\nsocket.create_connection(('127.0.0.1', 9))",
        "import _socket\n_socket.socket()",
        "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/')",
    ],
)
def test_opening_a_socket_is_blocked_and_scored_failed(code):
    result = run_python(code + "\n" + ADD, ADD_TESTS)
    assert not result.passed and result.status == "blocked"


def test_os_system_and_subprocess_are_blocked(tmp_path):
    marker = tmp_path / "ran.txt"
    result = run_python(f"import os\nos.system('touch {marker}')\n" + ADD, ADD_TESTS)
    assert result.status == "blocked" and not marker.exists()
    result = run_python(f"import subprocess\nsubprocess.run(['touch', {str(marker)!r}])\n" + ADD, ADD_TESTS)
    assert result.status == "blocked" and not marker.exists()


def test_exiting_before_the_tests_is_not_a_pass():
    assert run_python("import sys\nsys.exit(0)\n", "assert False").status == "failed"
    assert run_python("import os\nos._exit(0)\n", "assert False").status == "failed"


def test_memory_limit_turns_a_huge_allocation_into_a_failure():
    result = run_python("blob = bytearray(4 * 1024 ** 3)\n", "", memory_mb=256)
    assert result.status == "failed" and "MemoryError" in result.stderr


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="timeout"):
        run_python(ADD, ADD_TESTS, timeout=0)
    with pytest.raises(ConfigError, match="memory_mb"):
        run_python(ADD, ADD_TESTS, memory_mb=1)


# ------------------------------------------------------------------ without bubblewrap: refuse, or opt in


@pytest.fixture
def no_bwrap(tmp_path, monkeypatch):
    """A PATH without bwrap, and the once-per-process availability check redone under it."""
    from emd import sandbox

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    sandbox._probe.cache_clear()
    yield
    sandbox._probe.cache_clear()


def test_without_bwrap_model_code_is_refused_with_the_flag_named(no_bwrap):
    from emd.errors import SandboxUnavailableError
    from emd.sandbox import sandbox_available

    assert not sandbox_available()
    with pytest.raises(SandboxUnavailableError, match="bubblewrap.*--unsafe-code-eval"):
        run_python(ADD, ADD_TESTS)


def test_without_bwrap_the_unsafe_flag_runs_the_guarded_process(no_bwrap, tmp_path):
    assert run_python(ADD, ADD_TESTS, unsafe_code_eval=True).status == "passed"
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w')", "", unsafe_code_eval=True)
    assert result.status == "blocked" and not target.exists()


def test_capability_refuses_emd_code_before_the_model_runs(no_bwrap):
    from emd.errors import SandboxUnavailableError
    from emd.eval.capability import run_capability

    with pytest.raises(SandboxUnavailableError, match="unsafe-code-eval"):
        run_capability(object(), ["emd_capability"], limit=1)  # the model is never touched


def test_emd_code_hook_refuses_without_bwrap_unless_the_item_says_unsafe(no_bwrap):
    import importlib.util

    from emd.errors import SandboxUnavailableError
    from emd.eval.capability import TASKS_DIR

    spec = importlib.util.spec_from_file_location("emd_tasks_utils_gate", TASKS_DIR / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    doc = {"entry_point": "add", "prompt": "def add(a, b):\n", "tests": ADD_TESTS}
    with pytest.raises(SandboxUnavailableError):
        utils.process_code(doc, [ADD])
    # the flag reaches the hook as task metadata -> load_jsonl stamps it on each code item
    rows = utils.load_jsonl({"test": "data/emd_code.jsonl"}, unsafe_code_eval=True)["test"]
    assert all(rows["unsafe_code_eval"])
    assert utils.process_code(dict(doc, unsafe_code_eval=True), [ADD]) == {"pass_at_1": 1}


def test_lm_eval_tasks_that_execute_code_need_the_flag(tmp_path):
    """A task marked unsafe_code (like humaneval) is refused without unsafe_code_eval, naming it."""
    import shutil

    from emd.eval.capability import TASKS_DIR, run_capability
    from emd.models import load_model

    tasks_dir = tmp_path / "tasks"
    shutil.copytree(TASKS_DIR, tasks_dir)  # emd's tasks plus one that executes code
    (tasks_dir / "rows.py").write_text(
        "import datasets\n\n\ndef load(**_):\n"
        "    return datasets.DatasetDict({'test': datasets.Dataset.from_list([{'q': '1+1', 'a': '2'}])})\n"
    )
    (tasks_dir / "exec_task.yaml").write_text(
        "task: emd_test_exec\nunsafe_code: true\ncustom_dataset: !function rows.load\ntest_split: test\n"
        "output_type: generate_until\ndoc_to_text: '{{q}}'\ndoc_to_target: '{{a}}'\n"
        "generation_kwargs:\n  max_gen_toks: 2\nmetric_list:\n  - metric: exact_match\n"
    )
    model = load_model("embedded:smollm2")
    with pytest.raises(ConfigError, match="unsafe_code_eval"):
        run_capability(model, ["emd_test_exec"], limit=1, tasks_dir=tasks_dir)
