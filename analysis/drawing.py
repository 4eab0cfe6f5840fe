"""Matplotlib for the figures: a row of panels under a title, a curve with its band,
a diverged run, log axes where values span more than a decade, one legend below the
panels, and the PNG and PDF written through ``lr_study.runtime.run_files``."""

from __future__ import annotations

import io
import textwrap
from typing import Any, Mapping, Sequence

import numpy as np

from analysis import runs as runs_lib
from analysis.curves import Curve
from analysis.runs import Run
from analysis.styles import Style, markevery
from analysis.titles import diverged_text
from lr_study.runtime import run_files

FORMATS = ('png', 'pdf')
DPI = 120
DECADE = 10.0  # an axis spanning more than this ratio is drawn on a log scale

AXIS_LABELS = {'epoch': 'epochs', 'update': 'parameter updates', 'wall_time': 'training time (s)',
               'examples_seen': 'examples seen'}


def _positive(values: Sequence[np.ndarray]) -> np.ndarray:
  flat = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values] or [np.zeros(0)])
  return flat[np.isfinite(flat) & (flat > 0)]


def spans_decade(values: Sequence[np.ndarray]) -> bool:
  """Whether the positive finite values span more than a factor DECADE."""
  flat = _positive(values)
  return flat.size > 1 and flat.max() / flat.min() > DECADE


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
               band_alpha: float = 0.15) -> None:
  """The mean as a line with staggered markers (joined as ``curve.drawstyle`` says), ± one
  std shaded; ``label`` (None: none) gives way to the style's short label, and to none
  where the styles are factored."""
  if label is not None and style.label != '':
    label = style.label
  ax.plot(curve.x, curve.mean, color=style.color, linestyle=style.linestyle,
          marker=style.marker, markersize=5, markevery=markevery(style, len(curve.x)),
          markerfacecolor='white' if style.index % 2 else style.color,
          linewidth=1.6, drawstyle=curve.drawstyle, label=label)
  if curve.seeds > 1 and np.any(curve.std > 0):
    step = {'steps-pre': 'pre', 'steps-post': 'post'}.get(curve.drawstyle)
    ax.fill_between(curve.x, curve.mean - curve.std, curve.mean + curve.std,
                    color=style.color, alpha=band_alpha, linewidth=0, step=step)


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
  run_files.make_dirs(out_dir)
  tidy_log_axes(fig)
  paths = []
  for fmt in FORMATS:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    path = f'{out_dir.rstrip("/")}/{stem}.{fmt}'
    run_files.write_atomic(path, buffer.getvalue())
    paths.append(path)
  _plt().close(fig)
  return paths

