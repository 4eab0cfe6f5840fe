"""How each group of runs (sweep point, variant) is drawn, the same in every figure.

Up to ``MAX_DISTINCT`` groups each get a colour, line style and marker of their own, the
markers staggered so that curves which coincide stay visible. More groups (a sweep) have
their styles factored: colour by the swept key with the most values (a colour map past
10), line style by the next (or the variant), marker by the third, and the legend keys
each value once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from analysis import runs as runs_lib
from analysis.runs import Run
from lr_study import sweep

COLORS = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
          '#17becf', '#7f7f7f', '#bcbd22')
LINESTYLES = ('-', '--', '-.', ':', (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1, 1, 1)))
MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X', '*', 'h', '<')
MARKERS_PER_CURVE = 9
MAX_DISTINCT = len(COLORS)  # up to this many groups each get a colour, style and marker
COLORMAP = 'viridis'  # a colour dimension with more values than COLORS


@dataclasses.dataclass(frozen=True)
class Style:
  """How one (sweep point, variant) is drawn, the same in every figure.

  ``label``: the group's legend label, short (only the swept keys whose value differs
  between groups, each by its last dotted part); None where the legend keys factored
  styles instead (:class:`Styles`), so that the group's curves carry no label.
  """
  color: Any
  linestyle: Any
  marker: str
  index: int
  count: int
  label: str | None = ''


class Styles(dict):
  """The :class:`Style` of each group; ``legend``: for factored styles, one (label, line
  properties) entry per value of each styled dimension, else empty."""
  legend: list[tuple[str, dict[str, Any]]]


def _short_key(key: str) -> str:
  return key.rsplit('.', 1)[-1]


def _dimensions(runs: Sequence[Run]) -> list[tuple[str, list[Any]]]:
  """The swept keys whose value differs between the runs, then ``variant`` where it
  does, each with its values (points in value order, variants in run order); the one
  with the most values first."""
  dims = []
  for key in runs_lib.swept_keys(runs):
    values = sorted({repr(r.point.get(key)): r.point.get(key) for r in runs}.values(),
                    key=lambda v: runs_lib.point_order({key: v}))
    if len(values) > 1:
      dims.append((key, values))
  variants = list(dict.fromkeys(r.variant for r in runs))
  if len(variants) > 1:
    dims.append(('variant', variants))
  return sorted(dims, key=lambda d: -len(d[1]))  # stable: key order among equals


def _value_label(key: str, value: Any) -> str:
  return str(value) if key == 'variant' else f'{_short_key(key)}={sweep.format_value(value)}'


def _group_label(run: Run, dims: Sequence[tuple[str, list[Any]]]) -> str:
  """The run's values of ``dims`` (swept keys first), short; its label where none varies."""
  ordered = [d for d in dims if d[0] != 'variant'] + [d for d in dims if d[0] == 'variant']
  parts = [_value_label(key, run.variant if key == 'variant' else run.point.get(key))
           for key, _ in ordered]
  return ', '.join(parts) if parts else run.label


def _colors(count: int) -> list[Any]:
  if count <= len(COLORS):
    return list(COLORS[:count])
  import matplotlib  # pylint: disable=g-import-not-at-top
  cmap = matplotlib.colormaps[COLORMAP]
  return [cmap(i / (count - 1) * 0.92) for i in range(count)]  # the map's yellow end is faint


def styles(runs: Sequence[Run]) -> Styles:
  """The style of each group, in first-seen order.

  Up to ``MAX_DISTINCT`` groups: a distinct colour, line style and marker each, labelled
  by the values that differ between them. More (a sweep): colour by the dimension with
  the most values, line style by the next, marker by the third (``_dimensions``), and
  ``legend`` keys each value once.
  """
  grouped = runs_lib.group_runs(runs)
  groups = list(grouped)
  dims = _dimensions(runs)
  result = Styles()
  result.legend = []
  if len(groups) <= MAX_DISTINCT:
    for i, group in enumerate(groups):
      result[group] = Style(COLORS[i % len(COLORS)], LINESTYLES[i % len(LINESTYLES)],
                            MARKERS[i % len(MARKERS)], i, len(groups),
                            label=_group_label(grouped[group][0], dims))
    return result
  palettes = [_colors(len(dims[0][1]))] if dims else []
  palettes += [LINESTYLES, MARKERS][:max(len(dims) - 1, 0)]
  plain = {'color': COLORS[0], 'linestyle': '-', 'marker': MARKERS[0]}
  for i, group in enumerate(groups):
    run = grouped[group][0]
    chosen = dict(plain)
    for (key, values), palette, prop in zip(dims, palettes, ('color', 'linestyle', 'marker')):
      value = run.variant if key == 'variant' else run.point.get(key)
      index = next(k for k, v in enumerate(values) if repr(v) == repr(value))
      chosen[prop] = palette[index % len(palette)]
    result[group] = Style(chosen['color'], chosen['linestyle'], chosen['marker'], i,
                          len(groups), label=None)
  for (key, values), palette, prop in zip(dims, palettes, ('color', 'linestyle', 'marker')):
    for index, value in enumerate(values):
      line = {'color': '0.35', 'linestyle': '-', 'linewidth': 1.6}
      line.update({'color': palette[index], 'linewidth': 2.5} if prop == 'color' else
                  {prop: palette[index % len(palette)]})
      if prop == 'marker':
        line['linestyle'] = 'none'
      result.legend.append((_value_label(key, value), line))
  return result


def markevery(style: Style, n: int) -> tuple[int, int]:
  """About MARKERS_PER_CURVE markers (fewer when there are more groups), each group's at
  its own offset, so that the markers of coinciding curves alternate and never overlap."""
  step = max(1, n // MARKERS_PER_CURVE, style.count)
  return style.index % step, step

