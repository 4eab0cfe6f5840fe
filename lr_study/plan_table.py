"""A training plan as the text table ``launch.py --dry_run`` prints."""

from __future__ import annotations

from typing import Sequence

from lr_study.plan import Phase, TrainingPlan


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
                    f'examples seen: {plan.examples_seen:,} ({rule_of_epochs})'])
