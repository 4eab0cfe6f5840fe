"""Test setup: 8 fake CPU devices for the pmap tests, and no network for any test."""

import os

# Must happen before jax is imported anywhere.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import socket  # noqa: E402

import pytest  # noqa: E402


LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')


def _is_remote(host: object) -> bool:
  """A host name or address outside this machine (a path is a Unix socket: local)."""
  if isinstance(host, bytes):
    host = host.decode()
  return isinstance(host, str) and host not in LOCAL_HOSTS and '/' not in host


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
  """Resolving a remote name or connecting to a remote address fails the test at once."""

  def refuse(what: object) -> None:
    raise RuntimeError(f'test tried to reach the network: {what!r}')

  def guard(method):
    def guarded(self, address):
      if _is_remote(address[0] if isinstance(address, tuple) else address):
        refuse(address)
      return method(self, address)
    return guarded

  real_getaddrinfo = socket.getaddrinfo

  def guarded_getaddrinfo(host, *args, **kwargs):
    if _is_remote(host):
      refuse(host)
    return real_getaddrinfo(host, *args, **kwargs)

  monkeypatch.setattr(socket.socket, 'connect', guard(socket.socket.connect))
  monkeypatch.setattr(socket.socket, 'connect_ex', guard(socket.socket.connect_ex))
  monkeypatch.setattr(socket, 'getaddrinfo', guarded_getaddrinfo)


@pytest.fixture(scope='session')
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
  """A TFDS data_dir holding the prepared embedded digits, made once per test session."""
  from lr_study.data.sources import prepare_dataset  # pylint: disable=g-import-not-at-top
  from lr_study.config import dataset_defaults  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.getbasetemp() / 'tfds_digits')
  prepare_dataset(dataset_defaults('digits', data_dir=data_dir))
  return data_dir


class StopAfter:
  """A preemption (``lr_study.runtime.preemption.Preemption``) requested after the loop's
  ``n``-th dispatch, as a SIGTERM arriving during it."""

  def __init__(self, n: int):
    self.n, self.dispatches = n, 0

  def reached(self) -> bool:
    self.dispatches += 1
    return self.dispatches >= self.n


@pytest.fixture
def stop_after() -> type[StopAfter]:
  return StopAfter


def digits_run_config(data_dir: str, **overrides):
  """A one-run config on the embedded digits, small enough to train in seconds; the
  tests override what they study."""
  from lr_study import config as schema  # pylint: disable=g-import-not-at-top
  config = schema.get_config()
  del config['variants'], config['run_variants']
  config.update(dict(
      variant='test',
      dataset=schema.dataset_defaults('digits', data_dir=data_dir, eval_batch_size=128),
      model=dict(name='mlp', widths=(32,), batch_norm=False, dropout=0.0),
      optimizer=dict(name='momentum', momentum=0.9, weight_decay=0.0),
      lr_schedule=dict(name='multistep', init_value=0.05, boundaries=(3,), factors=0.2),
      batch_schedule=dict(name='multistep', batch_size=64, boundaries=(2, 4), factor=2),
      num_epochs=6, checkpoints_to_keep=10))
  with config.ignore_type():
    for key, value in overrides.items():
      config[key] = value
  return config
