"""A training plan as the text table ``launch.py --dry_run`` prints, and the warning for a
phase that drops more than :data:`MAX_DROPPED` of each epoch's examples."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from lr_study.plan import Phase, TrainingPlan

# Runs compared at equal epochs must see (nearly) equal examples: an epoch at batch B drops
# its last N mod B examples, and a phase dropping more than this share of N is flagged.
MAX_DROPPED = 0.05


def dropped_warnings(plan: TrainingPlan | Mapping[str, Any]) -> list[str]:
  """One line for each stretch of epochs whose phases drop more than ``MAX_DROPPED`` of the
  N examples of each epoch (``N mod B`` at batch B); [] when none does.

  ``plan``: a ``TrainingPlan`` or its ``to_json()`` (a run's ``plan.json``).
  """
  data = plan.to_json() if isinstance(plan, TrainingPlan) else plan
  n = data.get('num_train_examples')
  if not isinstance(n, int) or n <= 0:
    return []
  stretches: list[list[Any]] = []  # [first epoch, end epoch, batch sizes, dropped]
  for p in data.get('phases') or ():
    dropped = p.get('dropped_per_epoch', 0)
    if dropped <= MAX_DROPPED * n:
      continue
    last = stretches[-1] if stretches else None
    if last and last[1] >= p['start_epoch'] and last[3] == dropped and (
        last[2][-1] == p['batch_size'] or p.get('start_offset')):
      last[1] = max(last[1], p['end_epoch'])
      last[2] += [] if p['batch_size'] in last[2] else [p['batch_size']]
    else:
      stretches.append([p['start_epoch'], p['end_epoch'], [p['batch_size']], dropped])
  lines = []
  for start, end, sizes, dropped in stretches:
    one = end == start + 1
    where = f'epoch {start}' if one else f'epochs {start}-{end}'
    batches = ', '.join(f'{b:,}' for b in sizes)
    lines.append(f'warning: {where} at B = {batches} drop{"s" * one} {dropped:,} of the '
                 f'N = {n:,} examples{"" if one else " of each epoch"} '
                 f'({100 * dropped / n:.1f}%, over {100 * MAX_DROPPED:g}%): runs compared at '
                 'equal epochs see unequal data; choose a batch that divides N better')
  return lines


def _epochs(p: Phase) -> str:
  """``s-e`` for whole epochs; ``e @o`` for a batch ramp's phase, from example ``o`` of
  epoch ``e``'s order."""
  if p.start_offset == 0 and p.epoch_examples == p.updates_per_epoch * p.batch_size:
    return f'{p.start_epoch}-{p.end_epoch}'
  return f'{p.start_epoch} @{p.start_offset:,}'


def format_plan(plan: TrainingPlan) -> str:
  """The phases as a text table, with a totals row."""
  head = ('epochs', 'batch', 'per device', 'micro x accum', 'updates/epoch', 'dropped',
          'updates', 'first update', 'LR', 'LR mult', 'g', 'g approx')
  rows = [(_epochs(p), f'{p.batch_size:,}', f'{p.per_device_batch:,}',
           f'{p.micro_batch_size:,} x {p.accumulation_steps}', f'{p.updates_per_epoch:,}',
           f'{p.dropped_per_epoch:,}', f'{p.updates:,}', f'{p.first_update:,}',
           f'{p.learning_rate:.6g}', f'{p.lr_multiplier:.6g}', f'{p.noise_scale:.4g}',
           f'{p.noise_scale_approx:.4g}') for p in plan.phases]
  total = (f'total {plan.num_epochs}', '', '', '', '', '', f'{plan.total_updates:,}', '', '',
           '', '', '')
  widths = [max(len(r[i]) for r in (head, total, *rows)) for i in range(len(head))]

  def line(cells: Sequence[str]) -> str:
    return '  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

  rule = '-' * len(line(head))
  schedule = plan.batch_schedule
  title = (f'N={plan.num_train_examples:,} examples, {plan.num_epochs} epochs, '
           f'{plan.num_devices} device(s), momentum {plan.momentum:g}, '
           f'LR {plan.lr_schedule.name} ({plan.lr_schedule.clock} clock), '
           f'batch {schedule.name}'
           + (' (dynamic: the plan assumes B holds)' if schedule.dynamic else ''))
  rule_of_epochs = ('epoch = floor(N/B) updates, remainder dropped' if not schedule.ramp else
                    "a ramp's epoch 'e @o' runs from example o of its order; an epoch ends "
                    'when the next batch does not fit, the remainder dropped')
  return '\n'.join([title, line(head), rule, *map(line, rows), rule, line(total),
                    f'examples seen: {plan.examples_seen:,} ({rule_of_epochs})',
                    *dropped_warnings(plan)])
