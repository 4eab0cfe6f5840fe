"""The one error type for bad user input (flags, config values, dataset paths)."""


class ConfigError(ValueError):
  """A bad flag, config value or dataset path.

  Its message is one line that names the offending value, e.g.
  ``lr_schedule.boundaries must increase, got (60, 30)``. ``launch.py`` prints it
  and exits with status 2 before any data is loaded or any compute starts.
  """
