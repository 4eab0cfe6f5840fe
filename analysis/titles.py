"""The text of the figures' titles: what the runs trained (from their metadata) and over
how many seeds each curve is averaged."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from analysis.runs import Run
from lr_study.runtime import run_files


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
    return f'no {run_files.METADATA}'
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



def diverged_text(run: Run) -> str:
  """``diverged at update U`` (``diverged`` where the update is unknown)."""
  update = run.diverged_at_update
  return 'diverged' if update is None else f'diverged at update {update:,}'
