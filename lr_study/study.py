"""A study: the variants of one experiment config, each run for every seed.

An experiment config holds the settings all variants share, plus
``config.variants[name]``, the top-level keys that variant replaces wholesale
(typically ``lr_schedule`` and ``batch_schedule``), and ``config.run_variants``, the
variants to run. ``get_config('decay')`` selects one; ``get_config()`` selects all.
"""

from __future__ import annotations

import ml_collections

from lr_study import checks
from lr_study.errors import ConfigError

MAX_SEED = 2**31 - 1  # the largest int32


def check_variants(config: ml_collections.ConfigDict, names: tuple[str, ...]) -> tuple[str, ...]:
  """``names``, each a variant of ``config``; a ConfigError naming the first unknown one."""
  for name in names:
    if name not in config.variants:
      raise ConfigError(f'unknown variant {name!r} (known: {", ".join(config.variants)})')
  return names


def resolve_variant(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The config of one run of variant ``name`` (a known one: :func:`variant_configs`
  checks a study's): shared keys, replaced by the variant's.

  The result keeps ``variant`` (its name) and drops ``variants`` and ``run_variants``.
  """
  run = ml_collections.ConfigDict(config.to_dict())
  with run.ignore_type():
    for key, value in config.variants[name].items():
      run[key] = value
  del run['variants'], run['run_variants']
  run.variant = name
  return run


def run_names(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """The (variant, seed) pairs of a study, in run order; seeds in ``[0, MAX_SEED]``."""
  for name in config.run_variants:
    if ',' in name:
      raise ConfigError(f'run_variants holds {name!r}, one name with a comma: select several '
                        f'variants as --config=FILE.py:{name}')
  check_variants(config, tuple(config.run_variants))
  seeds = checks.integers('seeds', config.seeds, 0)
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f'seeds must be distinct, got {seeds}')
  if max(seeds, default=0) > MAX_SEED:
    raise ConfigError(f'seeds must be at most {MAX_SEED:,} (the train step takes a seed as '
                      f'an int32), got {max(seeds)}')
  return [(name, seed) for name in config.run_variants for seed in seeds]


def variant_configs(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
  """The resolved config of each variant the study runs, in run order, its
  ``run_variants`` and ``seeds`` checked once (:func:`run_names`)."""
  return {name: resolve_variant(config, name)
          for name in dict.fromkeys(name for name, _ in run_names(config))}


def select_variant(config: ml_collections.ConfigDict, arg: str | None,
                   default: tuple[str, ...] | None = None) -> ml_collections.ConfigDict:
  """Sets ``run_variants`` from a config-file argument.

  ``arg`` names one variant or several, comma-separated; None runs ``default`` (every
  variant when that is None). Used by every experiment's ``get_config(arg)``, so
  ``--config=file.py:decay`` runs one variant and an unknown variant fails before
  anything else happens.
  """
  names = tuple(arg.split(',')) if arg else (default or tuple(config.variants))
  config.run_variants = check_variants(config, names)
  return config


def decay_vs_batch_variants(config: ml_collections.ConfigDict, boundaries: tuple[int, ...],
                            factor: float, hybrid_factor: int) -> ml_collections.ConfigDict:
  """The paper's three ways to cut the noise scale g by ``factor`` at each boundary.

  Smith et al. (ICLR 2018), §5.1: ``decay`` divides ε (B fixed); ``increase`` multiplies
  B (ε fixed); ``hybrid`` multiplies B up to ``hybrid_factor``·B0, then divides ε. Each
  variant sets ``lr_schedule`` and ``batch_schedule`` from ``config.learning_rate`` (ε)
  and ``config.batch_size`` (B0) by reference, so ``--config.learning_rate=0.1`` changes
  all three alike, while ``--config.variants.decay.lr_schedule.init_value=0.1`` changes
  ``decay`` alone.
  """
  lr, b0 = config.get_ref('learning_rate'), config.get_ref('batch_size')
  # Every use is a reference of its own (``identity``): the knobs reach every variant, and
  # an override of one variant's value changes that variant alone.
  steps = lambda: dict(batch_size=b0.identity(), boundaries=boundaries, factor=factor)
  constant_lr = lambda: dict(name='constant', init_value=lr.identity())
  return ml_collections.ConfigDict({
      'decay': dict(lr_schedule=dict(name='multistep', init_value=lr.identity(),
                                     boundaries=boundaries, factors=1 / factor),
                    batch_schedule=dict(name='constant', batch_size=b0.identity())),
      'hybrid': dict(lr_schedule=constant_lr(),
                     batch_schedule=dict(name='hybrid', max_batch_size=b0 * hybrid_factor,
                                         **steps())),
      'increase': dict(lr_schedule=constant_lr(), batch_schedule=dict(name='multistep', **steps())),
  })
