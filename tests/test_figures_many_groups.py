"""analysis.figures with many groups (a sweep): colour by one swept key, line style by
another, marker by a third, a legend outside the panels keying each value once, short
labels."""

from __future__ import annotations

import json
import os

from analysis import figures, metric_figures
from analysis import runs as runs_lib
from analysis import styles as styles_lib
from lr_study import sweep
from test_figures import write_run


def _sweep(root: str, axes: dict, variants=('decay', 'increase')) -> list[runs_lib.Run]:
  for point in sweep.grid(list(axes.items())):
    for variant in variants:
      run_dir = write_run(os.path.join(root, sweep.point_name(point)), variant, 0,
                          updates_per_epoch=100)
      path = os.path.join(run_dir, 'metadata.json')
      metadata = json.load(open(path))
      with open(path, 'w') as f:
        json.dump({**metadata, 'sweep': point}, f)
  return runs_lib.load_runs(root)


def _legend_texts(fig) -> list[str]:
  (legend,) = fig.legends
  return [t.get_text() for t in legend.get_texts()]


def test_a_16_group_sweep_is_styled_by_key_and_its_legend_keys_each_value_once(tmp_path):
  runs = _sweep(str(tmp_path), {'variants.decay.lr_schedule.init_value': (0.01, 0.02, 0.05, 0.1),
                                'batch_size': (8, 16)})
  style_of = styles_lib.styles(runs)
  assert len(style_of) == 16
  looks = {(str(s.color), str(s.linestyle), s.marker) for s in style_of.values()}
  assert len(looks) == 16  # no two groups drawn alike
  by_group = {(r.point['variants.decay.lr_schedule.init_value'], r.point['batch_size'],
               r.variant): style_of[r.group] for r in runs}
  assert len({str(s.color) for s in style_of.values()}) == 4  # the key with the most values
  assert by_group[0.01, 8, 'decay'].color == by_group[0.01, 16, 'increase'].color
  assert by_group[0.01, 8, 'decay'].linestyle != by_group[0.01, 16, 'decay'].linestyle
  assert by_group[0.01, 8, 'decay'].marker != by_group[0.01, 8, 'increase'].marker
  fig = metric_figures.accuracy_figure(runs)
  assert _legend_texts(fig) == ['init_value=0.01', 'init_value=0.02', 'init_value=0.05',
                                'init_value=0.1', 'batch_size=8', 'batch_size=16', 'decay',
                                'increase']
  fig.canvas.draw()
  box = fig.legends[0].get_window_extent()
  assert all(box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below the panels
  assert all(not ax.get_legend() for ax in fig.axes)


def test_more_values_than_colours_take_a_colour_map(tmp_path):
  runs = _sweep(str(tmp_path), {'learning_rate': tuple(0.01 * k for k in range(1, 13))},
                variants=('decay',))
  style_of = styles_lib.styles(runs)
  assert len({str(s.color) for s in style_of.values()}) == 12
  for name in figures.FIGURES:
    fig = figures.BUILDERS[name](runs)
    if fig is not None:
      assert len(_legend_texts(fig)) == 12


def test_few_groups_keep_a_style_each_with_short_labels(tmp_path):
  runs = _sweep(str(tmp_path), {'variants.decay.lr_schedule.init_value': (0.05, 0.1),
                                'batch_size': (8,)})
  fig = metric_figures.accuracy_figure(runs)
  assert _legend_texts(fig) == ['init_value=0.05, decay', 'init_value=0.05, increase',
                                'init_value=0.1, decay', 'init_value=0.1, increase']
  assert len({s.color for s in styles_lib.styles(runs).values()}) == 4
