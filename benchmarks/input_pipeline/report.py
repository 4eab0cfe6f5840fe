"""The results record, its Markdown and the files ``input_pipeline.{json,md}``."""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from benchmarks import host
from lr_study.training.loop import max_in_flight

NAME = 'input_pipeline'
TARGET_PERCENT = 5.0


def _percent(part: dict[str, Any], whole: dict[str, Any], minus: dict[str, Any] | None = None
             ) -> dict[str, float]:
  """``100 · (part − minus) / whole`` of the medians and of the means."""
  return {k: 100 * (part[k] - (minus[k] if minus else 0.0)) / whole[k] for k in ('median', 'mean')}


def record(args: argparse.Namespace, dataset: str, num_train_examples: int, per_device: int,
           timings: dict[str, list[float]], gathers: list[str],
           streaming_rates: list[float] | None) -> dict[str, Any]:
  """The results of a run, as written to ``input_pipeline.json``."""
  times = {k: host.summary(v) for k, v in timings.items()}
  streaming = None if streaming_rates is None else {
      'batches_per_second': host.summary(streaming_rates),
      'us_per_batch_median': 1e6 / statistics.median(streaming_rates),
      'batches_timed': args.steps * args.repeats}
  fraction = _percent(times['data_side_us'], times['train_step_us'])
  return {
      'benchmark': NAME,
      'command': host.command('benchmarks.input_pipeline', args.argv),
      'dataset': dataset,
      'num_train_examples': num_train_examples,
      'model': 'mlp 784-256-256-10',
      'optimizer': 'momentum SGD, m = 0.9',
      'global_batch': args.batch_size,
      'per_device_batch': per_device,
      **host.machine(),
      'host_load_average_1min': os.getloadavg()[0],
      'steps': args.steps,
      'repeats': args.repeats,
      'warmup': args.warmup,
      'updates_per_dispatch': min(args.updates_per_dispatch,
                                  max_in_flight() or args.updates_per_dispatch),
      'steps_timed': args.steps * args.repeats,
      'sync_every': max_in_flight(),
      **times,
      'step_image_gathers': gathers,
      'data_fraction_percent': fraction,
      'image_data_fraction_percent': _percent(times['data_side_images_us'],
                                              times['train_step_us']),
      'data_fraction_net_of_dispatch_percent': _percent(
          times['data_side_us'], times['train_step_us'], minus=times['dispatch_floor_us']),
      'gather_in_step_percent': _percent(times['train_step_us'], times['train_step_us'],
                                         minus=times['fixed_batch_step_us']),
      'fused_data_fraction_percent': _percent(times['fused_data_side_us'],
                                              times['fused_train_step_us']),
      'target_percent': TARGET_PERCENT,
      'meets_target': fraction['median'] < TARGET_PERCENT,
      'streaming': streaming,
  }


def markdown(r: dict[str, Any]) -> str:
  """The results as a small Markdown table."""
  k = r['updates_per_dispatch']
  rows = [
      ('(a) data side: `take_micro_batches` in a pmap, images out as flat rows, µs/step',
       r['data_side_us'], '{:.1f}'),
      ('(a′) the same, images out as [P, 28, 28, 1], µs/step', r['data_side_images_us'],
       '{:.1f}'),
      ('(b) whole train step, one update per call, µs/step', r['train_step_us'], '{:.1f}'),
      ('dispatch floor: empty pmap, µs/call', r['dispatch_floor_us'], '{:.1f}'),
      (f'(c) data fraction a/b, % (target < {r["target_percent"]:g})',
       r['data_fraction_percent'], '{:.2f}'),
      ('a′/b, %', r['image_data_fraction_percent'], '{:.2f}'),
      ('data fraction net of dispatch (a − floor)/b, %',
       r['data_fraction_net_of_dispatch_percent'], '{:.2f}'),
      ('(b′) train step on a fixed on-device batch (normalize, no gather), µs/step',
       r['fixed_batch_step_us'], '{:.1f}'),
      ("gather's cost inside the step (b − b′)/b, %", r['gather_in_step_percent'], '{:.2f}'),
      (f'(a_K) data side, {k} updates per call, µs/update', r['fused_data_side_us'], '{:.1f}'),
      (f"(b_K) train step, {k} updates per call (the loop's default), µs/update",
       r['fused_train_step_us'], '{:.1f}'),
      ('fused data fraction a_K/b_K, %', r['fused_data_fraction_percent'], '{:.2f}'),
  ]
  if r['streaming'] is not None:
    rows.append(('(d) streaming tf.data → device, batches/s',
                 r['streaming']['batches_per_second'], '{:.0f}'))
  notes = [] if r['streaming'] is not None else ['(d) streaming: not run on synthetic data.']
  notes.append('The compiled train step gathers its images as '
               f'{", ".join(f"`{g}`" for g in r["step_image_gathers"])}.')
  notes.append(f'The data side {"meets" if r["meets_target"] else "misses"} the '
               f'< {r["target_percent"]:g}% target.')
  lines = [
      f'# Input pipeline vs train step: {r["dataset"]}, {r["model"]}, batch '
      f'{r["global_batch"]}', '', f'`{r["command"]}`', '',
      f'{host.machine_line(r)} {r["per_device_batch"]} examples per device; 1-minute load '
      f'{r["host_load_average_1min"]:.1f} at the end; {r["steps_timed"]} steps timed '
      f'({r["repeats"]} repetitions of {r["steps"]}, after {r["warmup"]} warm-up steps).',
      '', '| quantity | median | mean |', '| --- | ---: | ---: |',
      *(f'| {name} | {fmt.format(v["median"])} | {fmt.format(v["mean"])} |'
        for name, v, fmt in rows),
  ]
  return '\n'.join(lines + [line for note in notes for line in ('', note)]) + '\n'


def write(results: dict[str, Any], out_dir: str) -> str:
  """Writes ``input_pipeline.json`` and ``input_pipeline.md``; returns the Markdown."""
  text = markdown(results)
  host.write(out_dir, NAME, results, text)
  return text
