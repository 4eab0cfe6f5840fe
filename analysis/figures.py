r"""The paper's figures, from the run logs alone (no rerun).

    python -m analysis.figures --workdir=runs/digits [--workdir=runs/digits_more_seeds ...] \
        --out_dir=runs/digits/figures [--figure=accuracy ...]

reads every run under each WORKDIR (``analysis.runs``: studies, sweep points, dry runs)
and writes each figure as ``<name>.png`` and ``<name>.pdf`` to OUT_DIR (default
``<first WORKDIR>/figures``):

* ``schedules``: the LR, the batch size and (when logged) the noise scale g against
  epochs, per variant (Smith et al. 2018, Figure 1); from ``train_log.jsonl`` where it
  logs the LR, else ``metrics.jsonl``, else ``plan.json`` (a dry run);
* ``accuracy``: test accuracy against epochs and against parameter updates (Figure 2);
* ``loss``: training cross-entropy against epochs and against parameter updates;
* ``wall_clock``: test accuracy against training seconds;
* ``optimizers``: one panel per optimizer (``config.optimizer.name``), the schedules
  compared within each, test accuracy against epochs;
* ``gradient_noise``: the measured gradient noise scale B_simple
  (``gradient_noise_scale`` in ``metrics.jsonl``) over training, the batch size on the
  same axis; skipped, with a printed line, when no run logs a measured value.

Every curve is the mean over seeds, the band ± one standard deviation (said in each
figure's title). Each variant keeps one colour, line style and marker throughout, the
markers staggered, so that curves which coincide (decay and hybrid follow increase
until the first boundary) stay visible. Past ``MAX_DISTINCT`` groups (a sweep), the styles
are factored instead (:func:`styles`): colour by the swept key with the most values (a
colour map past 10), line style by the next (or the variant), marker by the third, and
the legend keys each value once (``init_value=0.1``, ``decay``), not every group. Parameter updates (as in the paper's Figure 5),
learning rates, losses and noise scales are drawn on a log axis where they span more
than a decade; batch sizes on a base-2 axis; epochs and seconds linearly from 0. One
legend per figure, below its panels, so that it covers no curve.
Titles name the dataset, model and optimizer from each run's ``metadata.json``. A run
whose summary says ``"status": "diverged"`` is drawn alone, up to its divergence, and
labelled "diverged at update U"; it never enters a mean.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import textwrap
from typing import Any, Callable, Mapping, Sequence

from absl import app, flags
import numpy as np

from analysis import runs as runs_lib
from analysis.runs import Run
from lr_study import sweep
from lr_study.errors import ConfigError
from lr_study.runtime.workdir import check_workdir

FIGURES = ('schedules', 'accuracy', 'loss', 'wall_clock', 'optimizers', 'gradient_noise')
FORMATS = ('png', 'pdf')
DPI = 120
DECADE = 10.0  # an axis spanning more than this ratio is drawn on a log scale

COLORS = ('#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
          '#17becf', '#7f7f7f', '#bcbd22')
LINESTYLES = ('-', '--', '-.', ':', (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1, 1, 1)))
MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X', '*', 'h', '<')
MARKERS_PER_CURVE = 9
MAX_DISTINCT = len(COLORS)  # up to this many groups each get a colour, style and marker
COLORMAP = 'viridis'  # a colour dimension with more values than COLORS

AXIS_LABELS = {'epoch': 'epochs', 'update': 'parameter updates', 'wall_time': 'training time (s)',
               'examples_seen': 'examples seen'}


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


@dataclasses.dataclass
class Curve:
  """A group's mean over seeds of ``y`` at each evaluation, and its standard deviation."""
  x: np.ndarray
  mean: np.ndarray
  std: np.ndarray
  seeds: int


def mean_curve(runs: Sequence[Run], x_key: str, y_key: str,
               source: str | Callable[[Run], Sequence[Mapping[str, Any]]] = 'metrics',
               scale: float = 1.0) -> Curve | None:
  """The mean and standard deviation over ``runs`` of ``y_key`` against ``x_key``.

  ``source``: ``'metrics'`` or ``'train_log'`` (``Run.rows``), or a function of a run
  that returns its rows.

  Rows are matched across runs by their epoch; at each, the mean is over the runs whose
  value there is finite (null is NaN), and ``x`` is the runs' mean ``x_key`` (the same
  for every seed unless the batch schedule changed at run time). None when no run has
  a finite ``y_key``.
  """
  by_epoch: dict[float, list[tuple[float, float]]] = {}
  for run in runs:
    for row in (source(run) if callable(source) else run.rows(source)):
      epoch = runs_lib.number(row.get('epoch'))
      if np.isnan(epoch):
        continue
      pair = (runs_lib.number(row.get(x_key)), scale * runs_lib.number(row.get(y_key)))
      by_epoch.setdefault(round(epoch, 9), []).append(pair)
  epochs = sorted(e for e, pairs in by_epoch.items() if any(np.isfinite(y) for _, y in pairs))
  if not epochs:
    return None
  x, mean, std = [], [], []
  for epoch in epochs:
    xs = np.array([p[0] for p in by_epoch[epoch]])
    ys = np.array([p[1] for p in by_epoch[epoch]])
    ys = ys[np.isfinite(ys)]
    x.append(np.nanmean(xs) if np.isfinite(xs).any() else np.nan)
    mean.append(ys.mean())
    std.append(ys.std(ddof=1) if len(ys) > 1 else 0.0)
  return Curve(np.array(x), np.array(mean), np.array(std), len(runs))


def _positive(values: Sequence[np.ndarray]) -> np.ndarray:
  flat = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values] or [np.zeros(0)])
  return flat[np.isfinite(flat) & (flat > 0)]


def spans_decade(values: Sequence[np.ndarray]) -> bool:
  """Whether the positive finite values span more than a factor DECADE."""
  flat = _positive(values)
  return flat.size > 1 and flat.max() / flat.min() > DECADE


# --- titles


def _widths(model: Mapping[str, Any]) -> str:
  widths = model.get('widths')
  return '-'.join(str(w) for w in widths) if isinstance(widths, (list, tuple)) else ''


def describe_dataset(config: Mapping[str, Any]) -> str:
  dataset = config.get('dataset') or {}
  name = str(dataset.get('name', '?'))
  split = dataset.get('train_split', 'train')
  if split and split != 'train':
    name += f' {split}'
  if dataset.get('validation_size'):
    name += f' ({dataset["validation_size"]:,} held out for validation)'
  return name


def describe_model(config: Mapping[str, Any]) -> str:
  model = config.get('model') or {}
  name = str(model.get('name', '?'))
  if name == 'mlp':
    text = f'MLP {_widths(model)}'.rstrip()
    extras = [e for e, on in (('batch norm', model.get('batch_norm')),
                              ('dropout', _any_dropout(model.get('dropout')))) if on]
    return text + (f' ({", ".join(extras)})' if extras else '')
  if name == 'wide_resnet':
    return f'WRN-{model.get("depth", "?")}-{model.get("width", "?")}'
  return name.upper() if name == 'cnn' else name


def _any_dropout(dropout: Any) -> bool:
  if isinstance(dropout, (list, tuple)):
    return any(d for d in dropout)
  return bool(dropout)


def describe_optimizer(config: Mapping[str, Any]) -> str:
  opt = config.get('optimizer') or {}
  name = str(opt.get('name', '?'))
  parts = []
  if name in ('momentum', 'nesterov') and 'momentum' in opt:
    parts.append(f'm = {opt["momentum"]:g}')
  if opt.get('weight_decay'):
    parts.append(f'wd = {opt["weight_decay"]:g}')
  return name + (f' ({", ".join(parts)})' if parts else '')


def describe(runs: Sequence[Run], optimizer: bool = True) -> str:
  """``dataset · model · optimizer`` of the runs (each distinct value once)."""
  configs = [r.config for r in runs if r.config]
  if not configs:
    return 'no metadata.json'
  parts = [describe_dataset, describe_model] + ([describe_optimizer] if optimizer else [])
  return ' · '.join(' / '.join(dict.fromkeys(f(c) for c in configs)) for f in parts)


def seeds_note(groups: Mapping[Any, Sequence[Run]]) -> str:
  counts = sorted({len([r for r in g if not r.diverged]) for g in groups.values()} - {0})
  if not counts:
    return 'single runs'
  n = f'{counts[0]}' if len(counts) == 1 else f'{counts[0]}–{counts[-1]}'
  if counts[-1] == 1:
    return '1 seed'
  return f'mean ± std over {n} seeds (shaded)'


# --- drawing


def _plt() -> Any:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def new_figure(panels: int, title: Sequence[str], width: float = 5.6, height: float = 4.2,
               sharey: bool = False) -> tuple[Any, list[Any]]:
  """A row of ``panels`` axes under ``title``, its lines wrapped to the figure's width."""
  plt = _plt()
  fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), squeeze=False,
                           sharey=sharey, layout='constrained')
  chars = int(width * panels * 13)
  fig.suptitle('\n'.join(textwrap.fill(line, chars) for line in title if line), fontsize=11)
  return fig, list(axes[0])


def draw_curve(ax: Any, curve: Curve, style: Style, label: str | None,
               drawstyle: str = 'default', band_alpha: float = 0.15) -> None:
  """The mean as a line with staggered markers, ± one std shaded; ``label`` (None: none)
  gives way to the style's short label, and to none where the styles are factored."""
  if label is not None and style.label != '':
    label = style.label
  ax.plot(curve.x, curve.mean, color=style.color, linestyle=style.linestyle,
          marker=style.marker, markersize=5, markevery=markevery(style, len(curve.x)),
          markerfacecolor='white' if style.index % 2 else style.color,
          linewidth=1.6, drawstyle=drawstyle, label=label)
  if curve.seeds > 1 and np.any(curve.std > 0):
    step = {'steps-pre': 'pre', 'steps-post': 'post'}.get(drawstyle)
    ax.fill_between(curve.x, curve.mean - curve.std, curve.mean + curve.std,
                    color=style.color, alpha=band_alpha, linewidth=0, step=step)


def diverged_text(run: Run) -> str:
  """``diverged at update U`` (``diverged`` where the update is unknown)."""
  update = run.diverged_at_update
  return 'diverged' if update is None else f'diverged at update {update:,}'


def draw_diverged(ax: Any, run: Run, style: Style, x_key: str, y_key: str,
                  source: str = 'metrics', scale: float = 1.0, label: bool = True) -> None:
  """One diverged run up to its divergence, thin, its end marked with a cross."""
  rows = run.rows(source)
  x = runs_lib.column(rows, x_key)
  y = scale * runs_lib.column(rows, y_key)
  text = f'{run.label} seed {run.seed}: {diverged_text(run)}' if label else None
  ax.plot(x, y, color=style.color, linestyle=':', linewidth=1.0, label=text)
  finite = np.isfinite(x) & np.isfinite(y)
  if finite.any():
    i = np.flatnonzero(finite)[-1]
    ax.plot([x[i]], [y[i]], color=style.color, marker='x', markersize=9, linestyle='none')


def set_log_if_wide(ax: Any, axis: str, values: Sequence[np.ndarray],
                    wide_numbers: bool = False) -> None:
  """A log scale on ``axis`` when ``values`` span more than a decade; else, with
  ``wide_numbers``, tick labels with thousands separators."""
  if spans_decade(values):
    if axis == 'x':
      ax.set_xscale('log')
    else:
      # A band whose mean − std falls to 0 or below would pull a log axis down by
      # decades: the axis starts just below the lowest curve, the band runs off it.
      ax.set_yscale('log')
      ax.set_ylim(bottom=_positive(values).min() / 1.5)
  elif axis == 'x' and wide_numbers:
    _thousands(ax.xaxis)


def _thousands(axis: Any) -> None:
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:,.0f}'))


def batch_size_axis(ax: Any, values: Sequence[np.ndarray]) -> None:
  """A base-2 log y axis labelled with the batch sizes' powers of 2, at least 1:4."""
  import matplotlib.ticker as ticker  # pylint: disable=g-import-not-at-top
  flat = _positive(values)
  if not flat.size:
    return
  ax.set_yscale('log', base=2)
  low, high = flat.min(), flat.max()
  if high / low < 4:
    ax.set_ylim(low / 2, high * 2)
  ax.yaxis.set_major_locator(ticker.LogLocator(base=2))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(_plain))
  ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _plain(value: float, _: Any = None) -> str:
  return f'{value:,.0f}' if value >= 1 else f'{value:g}'


def tidy_log_axes(fig: Any) -> None:
  """Log axes labelled in plain numbers (1, 2, 5 per decade where they span at most
  three decades; else one per decade), without minor labels."""
  import matplotlib.ticker as ticker  # pylint: disable=g-import-not-at-top
  for ax in fig.axes:
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
      if axis.get_scale() != 'log' or getattr(axis.get_transform(), 'base', 10) != 10:
        continue  # linear, or a base-2 batch-size axis (batch_size_axis)
      low, high = sorted(limits)
      decades = np.log10(high / low) if low > 0 else np.inf
      axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3
                                               else (1.0,)))
      axis.set_major_formatter(ticker.FuncFormatter(_plain))
      axis.set_minor_formatter(ticker.NullFormatter())


def add_legend(fig: Any, axes: Sequence[Any], style_of: Mapping[Any, Style] | None = None
               ) -> None:
  """One legend for the figure, below its panels, so that it covers no curve: the
  factored styles' keys of ``style_of`` (:class:`Styles`) first, then the labelled
  lines."""
  handles, labels = {}, []
  if getattr(style_of, 'legend', None):
    from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
    for label, line in style_of.legend:
      handles[label] = Line2D([], [], **line)
      labels.append(label)
  for ax in axes:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      if label not in handles:
        handles[label] = handle
        labels.append(label)
  if labels:
    ncol = min(len(labels), 4 if max(len(l) for l in labels) < 28 else 2)
    fig.legend([handles[l] for l in labels], labels, loc='outside lower center', ncol=ncol,
               fontsize=9, frameon=False)


def save(fig: Any, out_dir: str, stem: str) -> list[str]:
  """Writes ``fig`` as ``stem.png`` and ``stem.pdf`` to ``out_dir``; returns the paths."""
  runs_lib.make_dirs(out_dir)
  tidy_log_axes(fig)
  paths = []
  for fmt in FORMATS:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    path = f'{out_dir.rstrip("/")}/{stem}.{fmt}'
    runs_lib.write_bytes(path, buffer.getvalue())
    paths.append(path)
  _plt().close(fig)
  return paths


def _metric_groups(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
  return runs_lib.group_runs([r for r in runs if r.metrics])


def _panels(ax_list: Sequence[Any], runs: Sequence[Run], y_key: str, x_keys: Sequence[str],
            scale: float, style_of: Mapping[tuple[str, str], Style]) -> list[np.ndarray]:
  """Draws ``y_key`` against each of ``x_keys`` (one per panel) for every group; returns
  the mean curves' values drawn in the first panel."""
  drawn: list[np.ndarray] = []
  for group, members in _metric_groups(runs).items():
    style = style_of[group]
    healthy = [r for r in members if not r.diverged]
    for i, (ax, x_key) in enumerate(zip(ax_list, x_keys)):
      curve = mean_curve(healthy, x_key, y_key, scale=scale) if healthy else None
      if curve is not None:
        draw_curve(ax, curve, style, members[0].label)
        if i == 0:
          drawn.append(curve.mean)
      for run in members:
        if run.diverged:
          draw_diverged(ax, run, style, x_key, y_key, scale=scale, label=i == 0)
  return drawn


def _finish_axes(axes: Sequence[Any], x_keys: Sequence[str], ylabel: str,
                 runs: Sequence[Run]) -> None:
  groups = _metric_groups(runs)
  for ax, x_key in zip(axes, x_keys):
    xs = [runs_lib.column(r.rows('metrics'), x_key) for g in groups.values() for r in g]
    if x_key in ('update', 'examples_seen'):  # counts: log where they span a decade
      set_log_if_wide(ax, 'x', xs, wide_numbers=True)
    else:  # epochs and seconds: linear from 0
      ax.set_xlim(left=0)
    ax.set_xlabel(AXIS_LABELS.get(x_key, x_key))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def accuracy_figure(runs: Sequence[Run]) -> Any | None:
  """Test accuracy against epochs and against parameter updates (Figure 2)."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  fig, axes = new_figure(2, ['Test accuracy against epochs and parameter updates',
                             describe(runs), seeds_note(groups)], sharey=True)
  style_of = styles(runs)
  _panels(axes, runs, 'test_accuracy', ('epoch', 'update'), 100.0, style_of)
  _finish_axes(axes, ('epoch', 'update'), 'test accuracy (%)', runs)
  add_legend(fig, axes, style_of)
  return fig


def loss_figure(runs: Sequence[Run]) -> Any | None:
  """Training cross-entropy against epochs and against parameter updates."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  fig, axes = new_figure(2, ['Training cross-entropy (averaged over each epoch\'s updates)',
                             describe(runs), seeds_note(groups)], sharey=True)
  style_of = styles(runs)
  means = _panels(axes, runs, 'train_loss', ('epoch', 'update'), 1.0, style_of)
  _finish_axes(axes, ('epoch', 'update'), 'training loss', runs)
  set_log_if_wide(axes[0], 'y', means)  # the panels share their y axis
  axes[0].grid(alpha=0.3, which='both')
  axes[1].grid(alpha=0.3, which='both')
  add_legend(fig, axes, style_of)
  return fig


def wall_clock_figure(runs: Sequence[Run]) -> Any | None:
  """Test accuracy against training seconds."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  fig, axes = new_figure(1, ['Test accuracy against training time (compilation included)',
                             describe(runs), seeds_note(groups)], width=7.5)
  style_of = styles(runs)
  _panels(axes, runs, 'test_accuracy', ('wall_time',), 100.0, style_of)
  _finish_axes(axes, ('wall_time',), 'test accuracy (%)', runs)
  add_legend(fig, axes, style_of)
  return fig


def optimizers_figure(runs: Sequence[Run]) -> Any | None:
  """One panel per optimizer: test accuracy against epochs, each schedule a curve."""
  groups = _metric_groups(runs)
  if not groups:
    return None
  by_optimizer: dict[str, list[Run]] = {}
  for members in groups.values():
    for run in members:
      name = str((run.config.get('optimizer') or {}).get('name', 'unknown'))
      by_optimizer.setdefault(name, []).append(run)
  fig, axes = new_figure(len(by_optimizer), ['Test accuracy per optimizer',
                                             describe(runs, optimizer=False),
                                             seeds_note(groups)],
                         width=max(5.6, 7.5 / len(by_optimizer)), sharey=True)
  style_of = styles(runs)
  for ax, (name, members) in zip(axes, by_optimizer.items()):
    _panels([ax], members, 'test_accuracy', ('epoch',), 100.0, style_of)
    _finish_axes([ax], ('epoch',), 'test accuracy (%)', members)
    ax.set_title(' / '.join(dict.fromkeys(describe_optimizer(r.config) for r in members)),
                 fontsize=10)
  add_legend(fig, axes, style_of)
  return fig


# --- schedules (Figure 1)


def _step_curve(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
  """Per-evaluation values as a step function over epochs: each row's value holds over
  the epochs since the previous row (drawn with 'steps-pre'), from epoch 0."""
  epochs = runs_lib.column(rows, 'epoch')
  values = runs_lib.column(rows, key)
  if not len(epochs):
    return epochs, values
  return np.concatenate([[0.0], epochs]), np.concatenate([values[:1], values])


def _plan_curve(plan: Mapping[str, Any], key: str) -> tuple[np.ndarray, np.ndarray]:
  """A plan's phases as a step function: each phase's value from its start epoch."""
  phases = plan.get('phases') or []
  x = [p['start_epoch'] for p in phases] + [phases[-1]['end_epoch']] if phases else []
  y = [runs_lib.number(p.get(key)) for p in phases]
  return np.array(x, dtype=float), np.array(y + y[-1:], dtype=float)


def _schedule_series(members: Sequence[Run], key: str) -> tuple[Curve | None, str]:
  """A group's ``key`` (learning_rate, batch_size or noise_scale) over epochs, and the
  drawstyle: from the train log (the LR), the metrics, or the plan."""
  healthy = [r for r in members if not r.diverged] or list(members)
  logged = all(any('learning_rate' in row for row in r.train_log) for r in healthy)
  if key == 'learning_rate' and logged:
    curve = mean_curve(healthy, 'epoch', key, source='train_log')
    if curve is not None:
      return curve, 'default'
  if key == 'noise_scale' and logged and all(_noise_constants(r) for r in healthy):
    curve = mean_curve(healthy, 'epoch', key, source=train_log_noise_scale)
    if curve is not None:
      return curve, 'default'
  if any(r.metrics for r in healthy):
    series = [_step_curve(r.rows('metrics'), key) for r in healthy if r.metrics]
    return _mean_of_steps(series), 'steps-pre'
  if key != 'noise_scale' and all(r.plan for r in healthy):
    return _mean_of_steps([_plan_curve(r.plan, key) for r in healthy]), 'steps-post'
  return None, 'default'


def _noise_constants(run: Run) -> tuple[int, float] | None:
  """(N, m) of a run's plan, when it records both."""
  plan = run.plan or {}
  n, m = plan.get('num_train_examples'), plan.get('momentum')
  if isinstance(n, int) and isinstance(m, (int, float)) and plan.get('phases') and m < 1:
    return n, float(m)
  return None


def train_log_noise_scale(run: Run) -> list[dict[str, float]]:
  """g = ε(N/B − 1)/(1 − m) at each train-log row: ε logged, B from the plan's phase at
  that epoch, N and m from the plan (what the metrics log, at every logged update)."""
  n, m = _noise_constants(run)
  phases = run.plan['phases']
  rows = []
  for row in run.rows('train_log'):
    epoch, lr = runs_lib.number(row.get('epoch')), runs_lib.number(row.get('learning_rate'))
    # A row at the end of epoch e belongs to the phase that trained epoch e - 1.
    phase = next((p for p in phases if p['start_epoch'] < epoch <= p['end_epoch']), phases[0])
    rows.append({'epoch': epoch,
                 'noise_scale': lr * (n / phase['batch_size'] - 1) / (1 - m)})
  return rows


def _mean_of_steps(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> Curve | None:
  series = [s for s in series if len(s[0])]
  if not series or not any(np.isfinite(s[1]).any() for s in series):
    return None
  length = min(len(s[0]) for s in series)
  x = np.nanmean([s[0][:length] for s in series], axis=0)
  ys = np.array([s[1][:length] for s in series])
  finite = np.isfinite(ys)
  count = finite.sum(0)
  mean = np.where(count > 0, np.nansum(np.where(finite, ys, 0), 0) / np.maximum(count, 1), np.nan)
  std = np.nanstd(np.where(finite, ys, np.nan), axis=0, ddof=1) if len(series) > 1 else 0 * mean
  return Curve(x, mean, np.nan_to_num(std), len(series))


def schedules_figure(runs: Sequence[Run]) -> Any | None:
  """LR, batch size and noise scale g against epochs, one curve per variant (Figure 1)."""
  groups = runs_lib.group_runs(runs)
  if not groups:
    return None
  keys = [('learning_rate', 'learning rate'), ('batch_size', 'batch size')]
  if any('noise_scale' in row for r in runs for row in r.metrics):
    keys.append(('noise_scale', 'noise scale g = εN/(B(1 − m))'))
  planned = all(r.status == 'planned' for r in runs)
  fig, axes = new_figure(len(keys), [
      'Schedules ' + ('as planned (plan.json)' if planned else
                      'as trained (the LR from the train log where logged, else at each '
                      'evaluation)'), describe(runs), '' if planned else seeds_note(groups)],
                         width=4.8)
  style_of = styles(runs)
  for ax, (key, label) in zip(axes, keys):
    drawn = []
    for group, members in groups.items():
      curve, drawstyle = _schedule_series(members, key)
      if curve is None:
        continue
      draw_curve(ax, curve, style_of[group], members[0].label, drawstyle=drawstyle)
      drawn.append(curve.mean)
    if key == 'batch_size':
      batch_size_axis(ax, drawn)
    else:
      set_log_if_wide(ax, 'y', drawn)
    ax.set(xlabel='epochs', ylabel=label)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3, which='both')
  for run in runs:
    if run.diverged:
      for ax in axes:
        epoch = _epoch_at_update(run, run.diverged_at_update)
        if epoch is not None:
          ax.axvline(epoch, color=style_of[run.group].color, linestyle=':', linewidth=1.0,
                     label=f'{run.label} seed {run.seed}: {diverged_text(run)}'
                     if ax is axes[0] else None)
  add_legend(fig, axes, style_of)
  return fig


def _epoch_at_update(run: Run, update: int | None) -> float | None:
  rows = [r for r in run.metrics + run.train_log if runs_lib.number(r.get('update')) <= (update or 0)]
  if not rows:
    return None
  return max(runs_lib.number(r.get('epoch')) for r in rows)


# --- gradient noise


def gradient_noise_figure(runs: Sequence[Run]) -> Any | None:
  """B_simple over training per variant, the batch size on the same axis; None when no
  metrics row has ``gradient_noise_scale``."""
  measured = [r for r in runs
              if np.isfinite(runs_lib.column(r.metrics, 'gradient_noise_scale')).any()]
  if not measured:
    return None
  groups = runs_lib.group_runs(measured)
  note = seeds_note(groups)
  if 'std' in note:
    note += '; a band that reaches the bottom has std ≥ mean'
  fig, axes = new_figure(1, ['Gradient noise scale B_simple (markers) and batch size B '
                             '(dashed, same colour)', describe(measured), note],
                         width=7.5, height=4.8)
  ax = axes[0]
  style_of = styles(runs)
  drawn = []
  for group, members in groups.items():
    style = style_of[group]
    healthy = [r for r in members if not r.diverged]
    noise = mean_curve(healthy, 'epoch', 'gradient_noise_scale') if healthy else None
    if noise is not None:
      draw_curve(ax, noise, style, members[0].label, band_alpha=0.1)
      drawn.append(noise.mean)
    batch = mean_curve(healthy, 'epoch', 'batch_size') if healthy else None
    if batch is not None:
      ax.plot(np.concatenate([[0.0], batch.x]), np.concatenate([batch.mean[:1], batch.mean]),
              color=style.color, linestyle='--', linewidth=1.0, drawstyle='steps-pre')
      drawn.append(batch.mean)
    for run in members:
      if run.diverged:
        draw_diverged(ax, run, style, 'epoch', 'gradient_noise_scale')
  ax.plot([], [], color='0.3', linestyle='--', linewidth=1.0,
          label='batch size B (dashed)')
  set_log_if_wide(ax, 'y', drawn)
  ax.set(xlabel='epochs', ylabel='examples')
  ax.set_xlim(left=0)
  ax.grid(alpha=0.3, which='both')
  add_legend(fig, axes, style_of)
  return fig


BUILDERS: dict[str, Callable[[Sequence[Run]], Any | None]] = {
    'schedules': schedules_figure, 'accuracy': accuracy_figure, 'loss': loss_figure,
    'wall_clock': wall_clock_figure, 'optimizers': optimizers_figure,
    'gradient_noise': gradient_noise_figure,
}

SKIPPED = {
    'gradient_noise': 'no metrics row has a measured gradient_noise_scale (B_simple)',
}


def make_figures(runs: Sequence[Run], out_dir: str, names: Sequence[str] = FIGURES,
                 log: Callable[[str], None] = print) -> list[str]:
  """Writes each named figure of ``runs`` to ``out_dir`` (PNG and PDF); returns the paths.

  A figure with nothing to draw is skipped, with a line to ``log``.
  """
  paths = []
  for name in names:
    fig = BUILDERS[name](runs)
    if fig is None:
      log(f'{name}: skipped, {SKIPPED.get(name, "no run has logged metrics")}')
      continue
    paths.extend(save(fig, out_dir, name))
  return paths


def main(argv: list[str]) -> None:
  del argv
  workdirs = flags.FLAGS.workdir
  try:
    runs = runs_lib.load_runs(workdirs)
    if not runs:
      raise FileNotFoundError(f'no runs under {", ".join(workdirs)}')
    out_dir = check_workdir(flags.FLAGS.out_dir or os.path.join(workdirs[0], 'figures'),
                            flag='--out_dir')
    for path in make_figures(runs, out_dir, flags.FLAGS.figure or FIGURES):
      print(f'wrote {path}')
  except (ConfigError, OSError) as e:  # a file or line that is not JSON, an unwritable out_dir
    print(f'analysis.figures: error: {e}', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  flags.DEFINE_multi_string('workdir', None, 'A study directory (repeat for several).',
                            required=True)
  flags.DEFINE_string('out_dir', None, 'Where the figures go (default WORKDIR/figures).')
  flags.DEFINE_multi_enum('figure', None, FIGURES, 'A figure to draw (repeat; default all).')
  app.run(main)
