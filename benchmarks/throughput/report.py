"""The results record, its Markdown and the files ``throughput.{json,md}``."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from benchmarks import host
from benchmarks.throughput.loops import MOMENTUM, WIDTHS
from benchmarks.throughput.options import COLD_START_LOOPS, Options
from lr_study.training.setup import RunSetup

NAME = 'throughput'
BOUND_TARGET = 0.97  # lr_study ÷ the bound, at every batch size
PEER_TARGETS = {64: 1.3, 1024: 1.15}  # lr_study ÷ the NumPy-fed jit loop
LOOP_TITLES = {
    'lr_study': 'lr_study loop (K = {k} updates per dispatch)',
    'lr_study_k1': 'lr_study loop, K = 1',
    'jax_jit_device_batch': 'the jit step on a fixed on-device batch (the bound)',
    'jax_jit': 'host-fed jit loop, NumPy slicing',
    'jax_jit_tfdata': "host-fed jit loop, tf.data (the Flax MNIST example's)",
    'torch_randperm': 'PyTorch, randperm + slicing',
    'torch_dataloader': 'PyTorch, DataLoader',
}
RATIOS = (('lr_study', 'jax_jit_device_batch'), ('lr_study', 'jax_jit'),
          ('lr_study', 'jax_jit_tfdata'), ('lr_study', 'torch_randperm'),
          ('lr_study', 'lr_study_k1'), ('jax_jit_device_batch', 'jax_jit'))
HEADLINE = 'lr_study / jax_jit_device_batch'


def ratios(loops: dict[str, Any], b: str) -> dict[str, Any]:
  """Each ratio of :data:`RATIOS` both loops ran: of the epoch medians, and per round."""
  out = {}
  for x, y in RATIOS:
    if b in loops.get(x, {}) and b in loops.get(y, {}):
      p, q = loops[x][b], loops[y][b]
      per_round = [s / t for s, t in zip(p['examples_per_second_per_run'],
                                         q['examples_per_second_per_run'], strict=True)]
      out[f'{x} / {y}'] = {
          'of_medians': p['examples_per_second']['median'] / q['examples_per_second']['median'],
          'per_round': host.summary(per_round)}
  return out


def record(options: Options, setup: RunSetup, loops: dict[str, Any], costs: dict[str, Any],
           cold: dict[str, Any], loads: list[dict[str, Any]], load_seconds: float,
           torch: Any) -> dict[str, Any]:
  """The results of a run, as written to ``throughput.json``."""
  spec, batches = setup.spec, [str(b) for b in options.batch_sizes]
  by_b = {b: ratios(loops, b) for b in batches}
  default = costs['settings'][costs['default']]['percent_of_training']
  peer = {str(b): t for b, t in PEER_TARGETS.items() if str(b) in batches}
  return {
      'benchmark': NAME,
      'command': host.command('benchmarks.throughput', options.argv),
      'dataset': spec.name,
      'num_train_examples': spec.num_train_examples,
      'model': f'mlp {int(np.prod(spec.image_shape))}-{"-".join(map(str, WIDTHS))}-'
               f'{spec.num_classes}',
      'optimizer': f'SGD with momentum {MOMENTUM}, constant LR {options.learning_rate}',
      'batch_sizes': list(options.batch_sizes),
      'rounds': options.rounds,
      'epochs_per_run': options.epochs,
      'timed_epochs_per_loop': options.rounds * (options.epochs - 1),
      'updates_per_dispatch': setup.config.updates_per_dispatch,
      **host.machine(),
      'host_load': loads,
      'data_load_seconds': load_seconds,
      'torch_version': torch.__version__ if torch is not None else None,
      'torch_threads': torch.get_num_threads() if torch is not None else None,
      'loops': loops,
      'ratios': by_b,
      'targets': {'bound': BOUND_TARGET, 'peer': peer, 'noise_percent': costs['target_percent']},
      'meets_targets': {
          'bound': {b: by_b[b][HEADLINE]['of_medians'] >= BOUND_TARGET for b in batches},
          'peer': {b: by_b[b]['lr_study / jax_jit']['of_medians'] >= t for b, t in peer.items()},
          'noise': {b: default[b]['median'] <= costs['target_percent'] for b in batches}},
      'noise': costs,
      'cold_start': cold or None,
  }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  return (['| ' + ' | '.join(header) + ' |', '| --- |' + ' ---: |' * (len(header) - 1)]
          + ['| ' + ' | '.join(row) + ' |' for row in rows])


def _spread(s: dict[str, Any], fmt: str) -> str:
  """``median (min–max)`` of a summary."""
  return f'{fmt.format(s["median"])} ({fmt.format(s["min"])}–{fmt.format(s["max"])})'


def _met(flag: bool | None) -> str:
  return '' if flag is None else ' met' if flag else ' **missed**'


def _ratio_rows(r: dict[str, Any], batches: list[str]) -> list[list[str]]:
  met = r['meets_targets']
  rows = []
  for x, y in RATIOS:
    key = f'{x} / {y}'
    if key not in r['ratios'][batches[0]]:
      continue
    cells = [f'{r["ratios"][b][key]["of_medians"]:.2f}× '
             f'({r["ratios"][b][key]["per_round"]["min"]:.2f}–'
             f'{r["ratios"][b][key]["per_round"]["max"]:.2f})' for b in batches]
    title = f'**{key}**' if key == HEADLINE else key
    if key == HEADLINE:
      title += f' (target ≥ {BOUND_TARGET:.2f}×)'
      cells = [c + _met(met['bound'][b]) for c, b in zip(cells, batches)]
    if key == 'lr_study / jax_jit':
      title += ' (target ' + ', '.join(f'≥ {t:.2f}× at B = {b}'
                                       for b, t in r['targets']['peer'].items()) + ')'
      cells = [c + _met(met['peer'].get(b)) for c, b in zip(cells, batches)]
    rows.append([title, *cells])
  return rows


def _noise_rows(r: dict[str, Any], batches: list[str]) -> list[list[str]]:
  rows = []
  for name, setting in r['noise']['settings'].items():
    chunk, examples = name.split(':')
    title = f'b = {chunk}, n = {"the whole split" if examples == "0" else examples}'
    if name == r['noise']['default']:
      title = f'**{title} (default)**'
    rows.append([title, f'{setting["examples_measured"]:,}',
                 _spread(setting['seconds'], '{:.3f}'),
                 f'{1e6 * setting["seconds"]["median"] / setting["examples_measured"]:.0f}',
                 *(_spread(setting['percent_of_training'][b], '{:.1f}%') for b in batches)])
  return rows


def _noise_verdict(r: dict[str, Any], batches: list[str]) -> str:
  noise, target = r['noise'], r['noise']['target_percent']
  default = noise['settings'][noise['default']]['percent_of_training']
  worst = max(default[b]['median'] for b in batches)
  verdict = ('The default costs ' + ', '.join(f'{default[b]["median"]:.1f}% at B = {b}'
                                               for b in batches)
             + f' (medians): {"within" if worst <= target else f"{worst / target:.1f}× the"} '
             f'{target:g}% target')
  every = noise['every_epochs']
  needed = math.ceil(every * worst / target)
  verdict += ('.' if worst <= target else
              f'; measuring every {needed} epochs would bring it within.')
  trained = ', '.join(f'{1e6 / r["loops"]["lr_study"][b]["examples_per_second"]["median"]:.0f}'
                      for b in batches)
  verdict += f' The lr_study loop trains at {trained} µs per example.'
  under = noise['under_target_at_every_batch_size']
  return verdict + (' Within it at every batch size: ' + ', '.join(f'`{s}`' for s in under)
                    + '.' if under else ' No setting timed is within it at every batch size.')


def _start_rows(r: dict[str, Any], batches: list[str]) -> list[list[str]]:
  loops = r['loops']
  lr = {b: loops['lr_study'][b] for b in batches}
  rows = [['lr_study train-step compiles, all seeds', *(str(lr[b]['compiles']) for b in batches)],
          ['lr_study XLA compiles per run: first seed, later seeds',
           *(f'{lr[b]["xla_compiles_per_run"][0]}, {max(lr[b]["xla_compiles_per_run"][1:] or [0])}'
             for b in batches)]]
  for loop in ('lr_study', 'jax_jit'):
    ttfu = [loops[loop][b]['time_to_first_update_s'] for b in batches]
    rows.append([f'{loop}: time to first update in this process, first run / later runs, s',
                 *(f'{t["first_run"]:.2f} / ' + ('–' if t['warm'] is None else f'{t["warm"]:.2f}')
                   for t in ttfu)])
  for loop in COLD_START_LOOPS:
    if loop in (r['cold_start'] or {}):
      c = r['cold_start'][loop]
      rows.append([f'{loop}: cold start, launch → first update (loop start → first update; '
                   'XLA compiles before it), s',
                   *(f'{c[b]["launch_to_first_update_s"]:.1f} '
                     f'({c[b]["loop_start_to_first_update_s"]:.2f}; '
                     f'{c[b]["xla_compiles_before_first_update"]})' for b in batches)])
  return rows


def markdown(r: dict[str, Any]) -> str:
  """The results as Markdown: the ratios, the loops, the noise measurement, start-up."""
  batches = [str(b) for b in r['batch_sizes']]
  columns = ['', *(f'B = {b}' for b in batches)]
  loads = ', '.join(f'{s["at"]} {s["load_average"][0]:.1f}' for s in r['host_load'])
  rates = [[LOOP_TITLES[loop].format(k=r['updates_per_dispatch']),
            *(f'{r["loops"][loop][b]["examples_per_second"]["median"]:,.0f}' for b in batches)]
           for loop in LOOP_TITLES if loop in r['loops']]
  torch = (f'PyTorch {r["torch_version"]} ({r["torch_threads"]} threads)' if r['torch_version']
           else 'PyTorch not timed (not installed, or --notorch)')
  lines = [
      f'# Training throughput: {r["dataset"]} ({r["num_train_examples"]:,} examples), '
      f'{r["model"]}, {r["optimizer"]}', '', f'`{r["command"]}`', '',
      f'{host.machine_line(r)} {torch}. Median whole-epoch examples/s over '
      f'{r["timed_epochs_per_loop"]} epochs per loop ({r["rounds"]} runs of '
      f'{r["epochs_per_run"]} epochs taking turns, the first of each not timed). '
      f'1-minute load average: {loads}.', '',
      'Ratios of the loops\' median examples/s (the range of each round\'s ratio):', '',
      *_table(columns, _ratio_rows(r, batches)), '',
      *_table(['examples/s', *columns[1:]], rates), '',
      f'The gradient noise measurement, one every {r["noise"]["every_epochs"]} epoch(s) '
      f'(`gradient_noise_every_epochs`): b examples per chunk, n in all (below N: the n/2 '
      f'of highest loss and n/2 of the others); seconds per '
      f'measurement and its share of the lr_study loop\'s time per epoch, median (min–max) '
      f'over {r["rounds"]} rounds per batch size (target ≤ {r["targets"]["noise_percent"]:g}%).',
      '',
      *_table(['setting', 'examples measured', 's per measurement', 'µs per example',
               *(f'% of training, B = {b}' for b in batches)], _noise_rows(r, batches)), '',
      _noise_verdict(r, batches), '',
      *_table(columns, _start_rows(r, batches)),
  ]
  return '\n'.join(lines) + '\n'


def write(results: dict[str, Any], out_dir: str) -> str:
  """Writes ``throughput.json`` and ``throughput.md``; returns the Markdown."""
  text = markdown(results)
  host.write(out_dir, NAME, results, text)
  return text
