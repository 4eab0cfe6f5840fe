"""analysis.figures: every figure from run logs alone, as PNG and PDF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from analysis import curves, figures, metric_figures, schedule_figures, titles
from analysis import runs as runs_lib
from analysis import styles as styles_lib
from lr_study.schedules import noise_scale
from test_study_results import unwritable_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECAY_EPOCHS = (1, 2, 3, 4)


def _config(variant: str, optimizer: str = 'momentum') -> dict[str, Any]:
  return {'variant': variant, 'dataset': {'name': 'digits', 'train_split': 'train'},
          'model': {'name': 'mlp', 'widths': [128, 128]},
          'optimizer': {'name': optimizer, 'momentum': 0.9, 'weight_decay': 5e-4}}


def _write(run_dir: str, name: str, obj: Any) -> None:
  with open(os.path.join(run_dir, name), 'w') as f:
    if name.endswith('.jsonl'):
      f.writelines(json.dumps(r) + '\n' for r in obj)
    else:
      json.dump(obj, f)


def write_run(root: str, variant: str, seed: int, *, updates_per_epoch: int,
              batch_sizes: tuple[int, ...] = (8, 8, 8, 8), noise: bool = False,
              diverged_at: int | None = None, optimizer: str = 'momentum',
              accuracy: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9),
              train_log: list[dict[str, Any]] | None = None,
              plan: dict[str, Any] | None = None) -> str:
  """A finished (or diverged) run: one metrics row per epoch."""
  run_dir = os.path.join(root, variant, f'seed_{seed}')
  os.makedirs(run_dir)
  rows, update = [], 0
  for epoch, (batch, acc) in enumerate(zip(batch_sizes, accuracy), start=1):
    update += updates_per_epoch * 8 // batch
    row = {'epoch': float(epoch), 'update': update, 'learning_rate': 0.1, 'batch_size': batch,
           'noise_scale': 1000.0 / batch, 'train_loss': 2.0 / epoch ** 2,
           'test_accuracy': acc + 0.01 * seed, 'test_loss': 1.0 / epoch,
           'wall_time': 0.5 * epoch}
    if noise:
      row['gradient_noise_scale'] = 20.0 * epoch
    if diverged_at is not None and update > diverged_at:
      row.update(train_loss=None, test_loss=None, gradient_noise_scale=None)
      rows.append(row)
      break
    rows.append(row)
  _write(run_dir, 'metrics.jsonl', rows)
  _write(run_dir, 'train_log.jsonl', train_log or [])
  if plan is not None:
    _write(run_dir, 'plan.json', plan)
  summary = {'variant': variant, 'seed': seed, 'epochs': 4, 'updates': rows[-1]['update'],
             'examples_seen': 0, 'final_test_accuracy': rows[-1]['test_accuracy'],
             'final_test_loss': rows[-1]['test_loss'], 'wall_time': rows[-1]['wall_time']}
  if diverged_at is not None:
    summary.update(status='diverged', diverged_at_update=diverged_at)
  _write(run_dir, 'summary.json', summary)
  _write(run_dir, 'metadata.json', {'config': _config(variant, optimizer), 'seed': seed})
  return run_dir


def _paper_study(root: str, noise: bool = False) -> str:
  """decay (B = 8) and increase (B = 8 → 512), three seeds each."""
  for seed in range(3):
    write_run(root, 'decay', seed, updates_per_epoch=100, noise=noise)
    write_run(root, 'increase', seed, updates_per_epoch=100, batch_sizes=(8, 32, 128, 512),
              noise=noise)
  return root


def _texts(fig: Any) -> str:
  """Every text of a figure: title, axis labels, legend entries."""
  parts = [t.get_text() for t in fig.texts] + [fig._suptitle.get_text()]  # pylint: disable=protected-access
  for legend in fig.legends:
    parts.extend(t.get_text() for t in legend.get_texts())
  for ax in fig.axes:
    parts.extend([ax.get_title(), ax.get_xlabel(), ax.get_ylabel()])
  return '\n'.join(parts)


@pytest.mark.slow
def test_every_figure_is_written_as_png_and_pdf(tmp_path):
  runs = runs_lib.load_runs(_paper_study(str(tmp_path / 'study'), noise=True))
  paths = figures.make_figures(runs, str(tmp_path / 'out'))
  assert sorted(os.path.basename(p) for p in paths) == sorted(
      f'{name}.{fmt}' for name in figures.FIGURES for fmt in ('png', 'pdf'))
  for path in paths:
    assert open(path, 'rb').read(4) in (b'\x89PNG', b'%PDF')


def test_gradient_noise_is_skipped_with_a_line_when_no_run_logs_it(tmp_path):
  runs = runs_lib.load_runs(_paper_study(str(tmp_path / 'study')))
  lines = []
  paths = figures.make_figures(runs, str(tmp_path / 'out'), ['gradient_noise'], log=lines.append)
  assert paths == []
  assert lines == ['gradient_noise: skipped, no metrics row has a measured gradient_noise_scale (B_simple)']


def test_curves_are_the_mean_and_std_over_seeds_matched_by_epoch(tmp_path):
  runs = runs_lib.load_runs(_paper_study(str(tmp_path)))
  decay = [r for r in runs if r.variant == 'decay']
  curve = curves.mean_curve(decay, 'update', 'test_accuracy', scale=100.0)
  np.testing.assert_allclose(curve.x, [100, 200, 300, 400])
  np.testing.assert_allclose(curve.mean, [51, 71, 81, 91])
  np.testing.assert_allclose(curve.std, [1, 1, 1, 1])
  assert curve.seeds == 3


def test_null_values_are_left_out_of_the_mean(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, updates_per_epoch=100)
  write_run(str(tmp_path), 'decay', 1, updates_per_epoch=100)
  rows = [json.loads(line) for line in open(os.path.join(run_dir, 'metrics.jsonl'))]
  rows[1]['train_loss'] = None
  _write(run_dir, 'metrics.jsonl', rows)
  curve = curves.mean_curve(runs_lib.load_runs(str(tmp_path)), 'epoch', 'train_loss')
  np.testing.assert_allclose(curve.mean, [2.0, 0.5, 2 / 9, 0.125])
  np.testing.assert_allclose(curve.std, [0, 0, 0, 0])


def test_a_diverged_run_is_drawn_to_its_divergence_labelled_and_left_out_of_the_mean(tmp_path):
  for seed in range(2):
    write_run(str(tmp_path), 'decay', seed, updates_per_epoch=100)
  write_run(str(tmp_path), 'decay', 2, updates_per_epoch=100, diverged_at=250)
  runs = runs_lib.load_runs(str(tmp_path))
  fig = metric_figures.accuracy_figure(runs)
  assert 'decay seed 2: diverged at update 250' in _texts(fig)
  assert 'mean ± std over 2 seeds (shaded)' in _texts(fig)
  diverged = [line for line in fig.axes[1].get_lines() if line.get_linestyle() == ':']
  assert max(diverged[0].get_xdata()) <= 250
  curve = curves.mean_curve([r for r in runs if not r.diverged], 'epoch', 'test_accuracy')
  np.testing.assert_allclose(curve.mean, [0.505, 0.705, 0.805, 0.905])


def test_updates_are_on_a_log_axis_when_they_span_more_than_a_decade(tmp_path):
  narrow_root, wide_root = str(tmp_path / 'narrow'), str(tmp_path / 'wide')
  write_run(narrow_root, 'decay', 0, updates_per_epoch=100)  # 100 to 400 updates
  narrow = metric_figures.accuracy_figure(runs_lib.load_runs(narrow_root))
  assert narrow.axes[1].get_xscale() == 'linear'
  write_run(wide_root, 'decay', 0, updates_per_epoch=100)
  write_run(wide_root, 'large_batch', 0, updates_per_epoch=100, batch_sizes=(512,) * 4)  # 1 to 4
  wide = metric_figures.accuracy_figure(runs_lib.load_runs(wide_root))
  assert wide.axes[1].get_xscale() == 'log'
  assert wide.axes[0].get_xscale() == 'linear'  # epochs


def test_titles_name_dataset_model_and_optimizer(tmp_path):
  fig = metric_figures.accuracy_figure(runs_lib.load_runs(_paper_study(str(tmp_path))))
  assert 'digits · MLP 128-128 · momentum (m = 0.9, wd = 0.0005)' in _texts(fig)
  assert 'mean ± std over 3 seeds (shaded)' in _texts(fig)


def test_each_variant_has_its_own_line_style_and_marker_everywhere(tmp_path):
  runs = runs_lib.load_runs(_paper_study(str(tmp_path)))
  styles = styles_lib.styles(runs)
  assert len({s.linestyle for s in styles.values()}) == len({s.marker for s in styles.values()}) == 2
  fig = metric_figures.accuracy_figure(runs)
  drawn = {(line.get_label(), line.get_marker(), str(line.get_linestyle()))
           for ax in fig.axes for line in ax.get_lines()}
  assert len({d[0] for d in drawn}) == 2 and len(drawn) == 2


def test_markers_of_coinciding_curves_are_staggered(tmp_path):
  runs = runs_lib.load_runs(_paper_study(str(tmp_path)))
  first, second = styles_lib.styles(runs).values()
  assert styles_lib.markevery(first, 40) != styles_lib.markevery(second, 40)


def test_the_legend_lies_outside_the_panels(tmp_path):
  fig = metric_figures.accuracy_figure(runs_lib.load_runs(_paper_study(str(tmp_path))))
  fig.canvas.draw()
  (legend,) = fig.legends
  box = legend.get_window_extent()
  assert all(box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)
  assert all(not ax.get_legend() for ax in fig.axes)


def test_optimizers_figure_has_one_panel_per_optimizer(tmp_path):
  write_run(str(tmp_path / 'a'), 'decay', 0, updates_per_epoch=100, optimizer='sgd')
  write_run(str(tmp_path / 'b'), 'decay', 0, updates_per_epoch=100, optimizer='adam')
  fig = metric_figures.optimizers_figure(runs_lib.load_runs([str(tmp_path / 'a'), str(tmp_path / 'b')]))
  assert sorted(ax.get_title().split(' ')[0] for ax in fig.axes) == ['adam', 'sgd']


def test_schedules_draw_batch_size_per_epoch_on_a_log_axis(tmp_path):
  fig = schedule_figures.schedules_figure(runs_lib.load_runs(_paper_study(str(tmp_path))))
  batch_axis = fig.axes[1]
  assert batch_axis.get_ylabel() == 'batch size' and batch_axis.get_yscale() == 'log'
  increase = [l for l in batch_axis.get_lines() if l.get_label() == 'increase'][0]
  assert list(increase.get_ydata()) == [8, 8, 32, 128, 512]
  assert list(increase.get_xdata()) == [0, 1, 2, 3, 4]


def test_schedules_take_the_lr_from_the_train_log_where_it_is_logged(tmp_path):
  log = [{'epoch': e / 4, 'update': 25 * e, 'learning_rate': 0.1 * (1 + e % 2)}
         for e in range(1, 17)]
  write_run(str(tmp_path), 'triangular', 0, updates_per_epoch=100, train_log=log)
  fig = schedule_figures.schedules_figure(runs_lib.load_runs(str(tmp_path)))
  (line,) = fig.axes[0].get_lines()
  assert len(line.get_xdata()) == 16


def test_schedules_compute_the_noise_scale_at_every_train_log_row(tmp_path):
  log = [{'epoch': e / 4, 'update': 25 * e, 'learning_rate': 0.01 * e} for e in range(1, 17)]
  phase = {'first_update': 0, 'start_epoch': 0, 'end_epoch': 4, 'updates_per_epoch': 100,
           'batch_size': 8, 'lr_multiplier': 1.0, 'start_offset': 0, 'epoch_examples': 800}
  plan = {'num_train_examples': 808, 'momentum': 0.9, 'phases': [phase]}
  write_run(str(tmp_path), 'triangular', 0, updates_per_epoch=100, train_log=log, plan=plan)
  fig = schedule_figures.schedules_figure(runs_lib.load_runs(str(tmp_path)))
  (line,) = fig.axes[2].get_lines()  # g = ε (N/B − 1)/(1 − m) = 1000 ε
  np.testing.assert_allclose(line.get_ydata(), [10.0 * e for e in range(1, 17)])
  assert fig.axes[2].get_ylabel() == f'noise scale {noise_scale.FORMULA}'  # what is drawn


def test_schedules_of_a_dry_run_come_from_its_plans(tmp_path):
  phases = [{'start_epoch': 0, 'end_epoch': 10, 'batch_size': 128, 'learning_rate': 0.1},
            {'start_epoch': 10, 'end_epoch': 20, 'batch_size': 640, 'learning_rate': 0.1}]
  os.makedirs(tmp_path / 'increase')
  _write(str(tmp_path / 'increase'), 'plan.json', {'phases': phases})
  (run,) = runs_lib.load_runs(str(tmp_path))
  assert (run.variant, run.status) == ('increase', 'planned')
  fig = schedule_figures.schedules_figure([run])
  (line,) = fig.axes[1].get_lines()
  assert list(line.get_ydata()) == [128, 640, 640]
  assert 'as planned' in _texts(fig)


def test_gradient_noise_draws_b_simple_and_the_batch_size_on_one_axis(tmp_path):
  fig = schedule_figures.gradient_noise_figure(runs_lib.load_runs(_paper_study(str(tmp_path), noise=True)))
  (ax,) = fig.axes
  lines = {line.get_label(): line for line in ax.get_lines()}
  np.testing.assert_allclose(lines['decay'].get_ydata(), [20, 40, 60, 80])  # B_simple
  dashed = [list(line.get_ydata()) for line in ax.get_lines()
            if line.get_linestyle() == '--' and len(line.get_ydata())]
  assert [8, 8, 32, 128, 512] in dashed and [8, 8, 8, 8, 8] in dashed
  assert ax.get_yscale() == 'log'


@pytest.mark.slow
def test_cli_draws_the_requested_figure_of_several_workdirs(tmp_path):
  write_run(str(tmp_path / 'a'), 'decay', 0, updates_per_epoch=100)
  write_run(str(tmp_path / 'b'), 'decay', 1, updates_per_epoch=100)
  result = subprocess.run(
      [sys.executable, '-m', 'analysis.figures', f'--workdir={tmp_path}/a',
       f'--workdir={tmp_path}/b', f'--out_dir={tmp_path}/out', '--figure=loss'],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert sorted(os.listdir(tmp_path / 'out')) == ['loss.pdf', 'loss.png']


@pytest.mark.parametrize('flag', ['--figure=no_such_figure', '--workdir=/no/such/dir'])
@pytest.mark.slow
def test_cli_bad_input_fails(flag, tmp_path):
  args = [f'--workdir={tmp_path}'] if flag.startswith('--figure') else []
  result = subprocess.run([sys.executable, '-m', 'analysis.figures', *args, flag,
                           f'--out_dir={tmp_path}/out'], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode != 0


@pytest.mark.slow
def test_cli_names_the_file_and_line_of_a_damaged_log_in_one_line(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, updates_per_epoch=100)
  path = os.path.join(run_dir, 'metrics.jsonl')
  lines = open(path).read().splitlines(keepends=True)
  lines[2] = 'garbage\n'
  open(path, 'w').writelines(lines)
  result = subprocess.run([sys.executable, '-m', 'analysis.figures', f'--workdir={tmp_path}'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith(f'analysis.figures: error: {path} line 3 is not JSON: ')
  assert result.stderr.count('\n') == 1 and not os.path.exists(tmp_path / 'figures')


@pytest.mark.slow
def test_cli_refuses_an_out_dir_it_cannot_write_in_one_line(tmp_path):
  write_run(str(tmp_path / 'study'), 'decay', 0, updates_per_epoch=100)
  out_dir = unwritable_dir(tmp_path)
  result = subprocess.run([sys.executable, '-m', 'analysis.figures', f'--workdir={tmp_path}/study',
                           f'--out_dir={out_dir}'], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith(f"analysis.figures: error: --out_dir '{out_dir}' is not a "
                                  'usable directory: ')
  assert result.stderr.count('\n') == 1


def test_a_diverged_run_without_its_update_is_labelled_diverged(tmp_path):
  run_dir = write_run(str(tmp_path), 'decay', 0, updates_per_epoch=100)
  _write(run_dir, 'metrics.jsonl', [])
  _write(run_dir, 'summary.json', {'variant': 'decay', 'seed': 0, 'status': 'diverged'})
  write_run(str(tmp_path), 'increase', 0, updates_per_epoch=100)
  runs = runs_lib.load_runs(str(tmp_path))
  assert titles.diverged_text(runs[0]) == 'diverged'
  assert figures.make_figures(runs, str(tmp_path / 'out'), ['accuracy', 'schedules'])
