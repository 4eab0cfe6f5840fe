"""``python -m benchmarks.input_pipeline``."""

import sys

from benchmarks.input_pipeline.cli import main
from lr_study.errors import ConfigError

try:
  main()
except ConfigError as e:
  sys.exit(f'error: {e}')
