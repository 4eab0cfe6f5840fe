"""The text of a ``--sweep=KEY=v1,v2,...`` flag (``lr_study.sweep``) as an axis: its dotted
config key and its values, each a Python literal where it parses as one. Errors are
one-line ``lr_study.errors.ConfigError`` messages. This module imports no jax."""

from __future__ import annotations

import ast
import re
from typing import Any

from lr_study.errors import ConfigError

Axis = tuple[str, tuple[Any, ...]]  # (dotted key, its values)

_KEY = re.compile(r'[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z')


def split_values(text: str) -> list[str]:
  """``text`` cut at the commas that lie outside brackets and quotes."""
  parts, depth, quote, start = [], 0, '', 0
  for i, char in enumerate(text):
    if quote:
      if char == quote and text[i - 1] != '\\':
        quote = ''
    elif char in '\'"':
      quote = char
    elif char in '([{':
      depth += 1
    elif char in ')]}':
      depth -= 1
    elif char == ',' and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  parts.append(text[start:])
  return [p.strip() for p in parts]


def parse_value(text: str) -> Any:
  """``text`` as a Python literal where it is one, else the string itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return text


def check_key(key: str, where: str) -> str:
  if not _KEY.match(key):
    raise ConfigError(f'{where}: {key!r} is not a dotted config key like '
                      "'learning_rate' or 'variants.decay.lr_schedule.init_value'")
  return key


def parse_sweep_flag(text: str) -> Axis:
  """One ``--sweep=KEY=v1,v2,...`` value as ``(KEY, (v1, v2, ...))``."""
  where = f'--sweep={text}'
  key, sep, values = text.partition('=')
  if not sep:
    raise ConfigError(f'{where}: expected KEY=v1,v2,...')
  parts = split_values(values)
  if not values.strip() or any(not p for p in parts):
    raise ConfigError(f'{where}: empty value for {key.strip()!r}')
  return check_key(key.strip(), where), tuple(parse_value(p) for p in parts)
