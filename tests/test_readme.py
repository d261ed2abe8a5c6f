"""The README's Quickstart is exactly two command lines, and CI runs the second verbatim."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def quickstart_lines():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", text, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    main_job, tests = quickstart_lines()
    assert main_job.endswith("gdflows compare") and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_readme_python_examples_run():
    """Every ```python block of the README runs as written (in one namespace, in order)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks
    import jax

    x64 = jax.config.jax_enable_x64
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)  # our own documentation
    finally:
        jax.config.update("jax_enable_x64", x64)   # the numeric example switches float64 on
