"""emd.eval.capability and the offline lm-eval tasks in evaluation/tasks/."""

import importlib.util
import math

import pytest
import torch

from emd.errors import ConfigError
from emd.eval.capability import (
    OFFLINE_TASKS,
    TASKS_DIR,
    capability_deltas,
    metric_name,
    resolve_tasks,
    run_capability,
)


def _load_module(name):
    spec = importlib.util.spec_from_file_location(f"emd_tasks_{name}", TASKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def our_tasks():
    """emd's three tasks as lm-eval builds them from the YAML files (hooks resolved)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False).load(["emd_capability"])["tasks"]


def test_resolve_our_tasks_is_offline_and_deduplicated():
    assert resolve_tasks(["emd_arith", " emd_code", "emd_arith"]) == ["emd_arith", "emd_code"]
    assert resolve_tasks("emd_capability") == ["emd_capability"]
    assert resolve_tasks([]) == []


def test_unknown_task_names_list_close_matches():
    with pytest.raises(ConfigError) as info:
        resolve_tasks(["emd_arth", "gsm8kk"])
    message = str(info.value)
    assert "'emd_arth'" in message and "emd_arith" in message
    assert "'gsm8kk'" in message and "gsm8k" in message
    # lm-eval's own tasks are known once its index is built (cached from the call above)
    assert resolve_tasks(["emd_arith", "gsm8k", "mmlu"]) == ["emd_arith", "gsm8k", "mmlu"]


def test_data_files_match_the_generator_and_reference_solutions_pass():
    generate = _load_module("generate")
    assert generate.main(["--check"]) == 0


def test_tasks_load_from_any_working_directory(our_tasks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(TASKS_DIR), include_defaults=False).load(list(OFFLINE_TASKS))["tasks"]
    sizes = {name: len(task.test_docs()) for name, task in tasks.items()}
    assert set(sizes) == set(OFFLINE_TASKS)
    assert all(40 <= n <= 60 for n in sizes.values()), sizes


def test_code_hook_scores_correct_completions_1_and_wrong_ones_0(our_tasks):
    task = our_tasks["emd_code"]
    doc = task.test_docs()[0]
    name = doc["entry_point"]
    body = doc["canonical_solution"][len(doc["prompt"]):]
    assert task.process_results(doc, [doc["canonical_solution"]]) == {"pass_at_1": 1}
    # a chat answer with prose around a fenced block, and a bare completion of the prompt
    chat = f"Here you go:\n```python\n{doc['canonical_solution']}```\nThis works because ..."
    assert task.process_results(doc, [chat]) == {"pass_at_1": 1}
    assert task.process_results(doc, [body]) == {"pass_at_1": 1}
    assert task.process_results(doc, [f"def {name}(*args):\n    return None\n"]) == {"pass_at_1": 0}
    assert task.process_results(doc, ["I cannot write code."]) == {"pass_at_1": 0}
    # correct code that also tries to escape its folder is stopped and scored 0
    escape = "open('/tmp/emd-capability-escape.txt', 'w').write('x')\n" + doc["canonical_solution"]
    assert task.process_results(doc, [escape]) == {"pass_at_1": 0}


def test_arith_hook_compares_the_final_number(our_tasks):
    task = our_tasks["emd_arith"]
    doc = task.test_docs()[0]
    answer = doc["answer"]
    assert task.process_results(doc, [f"First 10 + 3 = 13.\nAnswer: {answer}"]) == {"exact_match": 1}
    assert task.process_results(doc, [f"So the total is {answer}."]) == {"exact_match": 1}
    assert task.process_results(doc, [f"Answer: {int(answer) + 1}"]) == {"exact_match": 0}
    assert task.process_results(doc, ["I do not know."]) == {"exact_match": 0}
    utils = _load_module("utils")
    assert utils.extract_final_number("It costs $1,200. Answer: $1,250.") == "1250"


def test_metric_names_are_mlflow_safe():
    assert metric_name("emd_code", "pass_at_1") == "cap/emd_code/pass_at_1"
    assert metric_name("humaneval", "pass@1", "create_test") == "cap/humaneval/pass_at_1/create_test"
    assert metric_name("gsm8k", "exact_match", "strict-match") == "cap/gsm8k/exact_match/strict-match"


def test_deltas_cover_shared_metrics_only():
    deltas = capability_deltas({"cap/a/acc": 0.5, "cap/b/acc": 0.2}, {"cap/a/acc": 0.75})
    assert deltas == {"delta/cap/a/acc/vs_vanilla": -0.25}
    assert capability_deltas({"cap/a/acc": 0.5}, {"cap/a/acc": 0.5}, against="control") == {
        "delta/cap/a/acc/vs_control": 0.0
    }
    with pytest.raises(ConfigError, match="against"):
        capability_deltas({}, {}, against="Vanilla!")


@pytest.mark.slow
def test_run_capability_on_the_embedded_model(tmp_path, monkeypatch):
    from emd.models import load_model

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the task files must not depend on the working directory
    model = load_model("embedded:smollm2")
    result = run_capability(model, ["emd_capability"], limit=4, batch_size=8)
    expected = {
        "cap/emd_arith/exact_match",
        "cap/emd_knowledge/acc",
        "cap/emd_knowledge/acc_norm",
        "cap/emd_code/pass_at_1",
    }
    assert set(result.metrics) == expected
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in result.metrics.values()), result.metrics
    assert set(result.stderr) == {name + "_stderr" for name in expected}
    assert result.n_samples == {name: 4 for name in OFFLINE_TASKS}
    assert set(result.versions) == set(OFFLINE_TASKS)
    assert all(len(result.raw["samples"][name]) == 4 for name in OFFLINE_TASKS)
    deltas = capability_deltas(result.metrics, result.metrics)
    assert set(deltas) == {f"delta/{name}/vs_vanilla" for name in expected}
    assert all(v == 0.0 for v in deltas.values())
