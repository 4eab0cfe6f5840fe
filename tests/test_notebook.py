"""notebooks/colab_tpu.ipynb, executed end to end on CPU with nbclient.

The parameters go in papermill's way: a cell tagged ``injected-parameters`` after the cell
tagged ``parameters``. They run the digits study shortened by the notebook's own
parameter, ``EPOCHS_SCALE = 0.1`` (4 of its 40 epochs), one seed, with no installs, no
download, no Drive and no TensorBoard. Executed twice into the same workdir, the first
run trains and the second resumes and trains nothing.

Also a script, for ``make notebook``: ``python tests/test_notebook.py [--workdir=DIR]
[--epochs_scale=S] [--seeds=0,1]`` executes the notebook once into DIR (default
``runs/notebook_digits``, so that running it again resumes there) and writes the executed
copy to ``DIR/colab_tpu.ipynb``.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import time
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import tiers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'notebooks', 'colab_tpu.ipynb')
MAX_BYTES = 100_000
PARAMETERS = ('EXPERIMENT', 'EPOCHS_SCALE', 'OVERRIDES', 'WORKDIR', 'REPO_URL', 'INSTALL',
              'DOWNLOAD', 'ALLOW_CPU', 'MOUNT_DRIVE', 'TENSORBOARD')
DIGITS_VARIANTS = ('decay', 'hybrid', 'increase')
MAX_FUNCTION_LINES = 10


def digits_parameters(workdir: str, data_dir: str = '', epochs_scale: float = 0.1,
                      seeds: str = '0') -> dict[str, Any]:
  """The digits study in about a minute on CPU: no installs, download, Drive or TensorBoard."""
  overrides = f'--config.seeds={seeds.rstrip(",")},'
  return dict(EXPERIMENT='experiments/digits_study.py', EPOCHS_SCALE=epochs_scale,
              OVERRIDES=overrides + (f' --config.dataset.data_dir={data_dir}' if data_dir else ''),
              WORKDIR=workdir, INSTALL=False, DOWNLOAD=False, MOUNT_DRIVE=False,
              TENSORBOARD=False)


def with_parameters(notebook: Any, parameters: dict[str, Any]) -> Any:
  """The notebook with papermill's injected-parameters cell after its parameters cell."""
  index = next(i for i, cell in enumerate(notebook.cells)
               if 'parameters' in cell.metadata.get('tags', []))
  source = '# Parameters\n' + ''.join(f'{k} = {v!r}\n' for k, v in parameters.items())
  notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
      source, metadata={'tags': ['injected-parameters']}))
  return notebook


def execute(parameters: dict[str, Any], output: str | None = None,
            timeout: int = 900) -> tuple[Any, float]:
  """Runs the notebook in a fresh kernel started in notebooks/ (as Jupyter opens it), on
  CPU; returns the executed notebook and the seconds it took."""
  notebook = with_parameters(nbformat.read(NOTEBOOK, as_version=4), parameters)
  client = NotebookClient(notebook, timeout=timeout, kernel_name='python3',
                          resources={'metadata': {'path': os.path.dirname(NOTEBOOK)}})
  started = time.monotonic()
  try:
    client.execute(env=dict(os.environ, JAX_PLATFORMS='cpu'))
  finally:
    if output:
      nbformat.write(notebook, output)
  return notebook, time.monotonic() - started


def text_of(notebook: Any) -> str:
  """Everything the cells printed or displayed as text."""
  parts = []
  for cell in notebook.cells:
    for out in cell.get('outputs', []):
      if out.output_type == 'stream':
        parts.append(out.text)
      elif out.output_type in ('display_data', 'execute_result'):
        if 'text/markdown' in out.data:
          parts.append(out.data['text/markdown'] + '\n')
        elif not any(kind.startswith('image/') for kind in out.data):
          parts.append(out.data.get('text/plain', '') + '\n')
      elif out.output_type == 'error':
        parts.append('\n'.join(out.traceback) + '\n')
  return ''.join(parts)


def images_of(notebook: Any) -> int:
  return sum('image/png' in out.get('data', {})
             for cell in notebook.cells for out in cell.get('outputs', []))


# --- the committed notebook


def _committed() -> Any:
  return nbformat.read(NOTEBOOK, as_version=4)


def test_committed_notebook_is_small_valid_and_without_outputs():
  assert os.path.getsize(NOTEBOOK) < MAX_BYTES
  notebook = _committed()
  nbformat.validate(notebook)
  assert notebook.metadata.kernelspec.name == 'python3'
  for cell in notebook.cells:
    if cell.cell_type == 'code':
      assert cell.outputs == [] and cell.execution_count is None


def test_parameters_cell_comes_first_and_defines_every_parameter():
  code = [cell for cell in _committed().cells if cell.cell_type == 'code']
  assert code[0].metadata.get('tags') == ['parameters']
  assert all('parameters' not in cell.metadata.get('tags', []) for cell in code[1:])
  names = re.findall(r'^([A-Z_]+) = ', code[0].source, re.M)
  assert tuple(names) == PARAMETERS
  values: dict[str, Any] = {}
  exec(code[0].source, values)  # pylint: disable=exec-used
  assert values['EXPERIMENT'] == 'experiments/mnist_decay_vs_batch.py'  # one sitting on one chip
  assert 'experiments/cifar10_wrn.py' in code[0].source  # the paper's study, one parameter away
  for path in ('experiments/mnist_decay_vs_batch.py', 'experiments/cifar10_wrn.py'):
    assert os.path.isfile(os.path.join(ROOT, path))
  assert values['EPOCHS_SCALE'] == 1.0 and values['INSTALL'] is True and values['WORKDIR'] == ''
  assert values['ALLOW_CPU'] is False and 'OWNER' in values['REPO_URL']
  assert re.search(r"^REPO_URL = .*# replace OWNER: ", code[0].source, re.M)


def _code_sources() -> list[str]:
  from IPython.core.inputtransformer2 import TransformerManager  # pylint: disable=g-import-not-at-top
  transform = TransformerManager().transform_cell
  return [transform(cell.source) for cell in _committed().cells if cell.cell_type == 'code']


def test_every_code_cell_is_valid_ipython_and_calls_the_library():
  for i, source in enumerate(_code_sources()):
    compile(source, f'code cell {i}', 'exec')
  sources = '\n'.join(cell.source for cell in _committed().cells)
  for needed in ('%load_ext tensorboard', '%tensorboard --logdir', 'drive.mount(',
                 'colab.install(REPO_DIR, ENV, ', 'colab.check_backend(', 'experiment.load(',
                 "f'--config.epochs_scale={EPOCHS_SCALE}'", 'experiment.workdir_name(',
                 'estimate.for_runtime(', 'lr_study.run(config, workdir)',
                 'session.summary(', 'figures.make_figures(', 'jax.devices()'):
    assert needed in sources, needed
  for gone in ('requirements.txt', 'jax[tpu]==', 'pytest', 'nbclient', 'ipykernel=='):
    assert gone not in sources, gone


def test_code_cells_define_no_function_longer_than_10_lines():
  for i, source in enumerate(_code_sources()):
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        lines = node.end_lineno - node.lineno + 1
        assert lines <= MAX_FUNCTION_LINES, f'code cell {i}: {getattr(node, "name", "lambda")}'


def test_tensorboard_starts_before_the_study_and_the_estimate_comes_before_both():
  sources = [cell.source for cell in _committed().cells if cell.cell_type == 'code']
  at = lambda text: next(i for i, source in enumerate(sources) if text in source)
  assert at('estimate.for_runtime(') < at('%tensorboard') < at('lr_study.run(config, workdir)')


def test_the_notebook_says_what_one_chip_means():
  text = ' '.join(cell.source for cell in _committed().cells if cell.cell_type == 'markdown')
  text = ' '.join(text.split())
  for needed in ('one v5e chip', 'one T4', 'whole global batch B', 'micro-batches',
                 '4–8 devices', '`jax.pmap` splits each global batch'):
    assert needed in text, needed


# --- executed twice


def _snapshot(workdir: str) -> dict[str, Any]:
  """What training changes in each run directory: its logs, checkpoints and update count."""
  import json  # pylint: disable=g-import-not-at-top
  out = {}
  for variant in DIGITS_VARIANTS:
    run_dir = os.path.join(workdir, variant, 'seed_0')
    for name in ('metrics.jsonl', 'train_log.jsonl', 'schedule_events.jsonl'):
      path = os.path.join(run_dir, name)
      if os.path.exists(path):
        with open(path, 'rb') as f:
          out[f'{variant}/{name}'] = f.read()
    out[f'{variant}/checkpoints'] = sorted(os.listdir(os.path.join(run_dir, 'checkpoints')))
    with open(os.path.join(run_dir, 'summary.json')) as f:
      summary = json.load(f)
    out[f'{variant}/summary'] = (summary['status'], summary['updates'], summary['examples_seen'],
                                 summary['final_test_accuracy'])
  return out


@pytest.mark.slow
def test_notebook_trains_the_study_then_resumes_it_and_trains_nothing(digits_data_dir, tmp_path):
  workdir = str(tmp_path / 'study')
  parameters = digits_parameters(workdir, digits_data_dir)

  first, seconds = execute(parameters, str(tmp_path / 'first.ipynb'))
  text = text_of(first)
  print(f'first run: {seconds:.1f} s')
  trained = re.search(r'Trained ([\d,]+) updates in this session: 3 run\(s\) started', text)
  assert trained and int(trained.group(1).replace(',', '')) > 0, text[-3000:]
  assert 'Nothing trained' not in text
  devices = tiers.forced_device_count(os.environ.get('XLA_FLAGS', ''))
  assert f'{devices} device(s)' in text  # this pytest run's CPU devices reach the kernel
  assert 'epochs_scale 0.1: 40 epochs -> 4; lr_schedule.boundaries (10, 20, 30) -> (1, 2, 3)' in text
  assert 'Estimated time: ≈ ' in text and 'for 3 run(s)' in text
  assert '| decay |' in text  # the study table
  assert 'TensorBoard skipped' in text
  done = _snapshot(workdir)
  assert all(done[f'{v}/summary'][0] == 'finished' for v in DIGITS_VARIANTS)
  # Every run's planned updates: the notebook's count is the sum of the three.
  assert int(trained.group(1).replace(',', '')) == sum(done[f'{v}/summary'][1]
                                                      for v in DIGITS_VARIANTS)
  for name in ('schedules', 'accuracy', 'loss', 'wall_clock'):
    assert os.path.isfile(os.path.join(workdir, 'figures', f'{name}.png')), name
  assert os.path.isfile(os.path.join(workdir, 'table.md'))
  assert images_of(first) >= 4

  second, seconds = execute(parameters, str(tmp_path / 'second.ipynb'))
  text = text_of(second)
  print(f'second run: {seconds:.1f} s')
  assert 'Nothing trained: all 3 runs had already finished' in text, text[-3000:]
  assert 'Trained' not in text
  assert 'train step compiled 0 time(s)' in text
  assert _snapshot(workdir) == done  # no update, no new log line, no new checkpoint
  assert images_of(second) >= 4


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description='Executes notebooks/colab_tpu.ipynb on the '
                                   'digits study, on CPU.')
  parser.add_argument('--workdir', default=os.path.join(ROOT, 'runs', 'notebook_digits'))
  parser.add_argument('--epochs_scale', type=float, default=0.1)
  parser.add_argument('--seeds', default='0')
  args = parser.parse_args(argv)
  workdir = os.path.abspath(args.workdir)
  os.makedirs(workdir, exist_ok=True)
  output = os.path.join(workdir, os.path.basename(NOTEBOOK))
  try:
    notebook, seconds = execute(digits_parameters(workdir, epochs_scale=args.epochs_scale,
                                                  seeds=args.seeds), output)
  except Exception as e:  # pylint: disable=broad-except  (nbclient's CellExecutionError)
    sys.exit(f'{e}\nthe executed notebook, up to the failing cell: {output}')
  print(text_of(notebook))
  print(f'executed in {seconds:.1f} s: {output}; figures in {workdir}/figures')


if __name__ == '__main__':
  main(sys.argv[1:])
