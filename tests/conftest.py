"""Test setup: 8 fake CPU devices for the pmap tests, and no network for any test."""

import os

# Must happen before jax is imported anywhere.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import socket  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
  """Any attempt to open a non-local connection fails the test at once."""
  real_connect = socket.socket.connect

  def guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ('127.0.0.1', 'localhost', '::1') and '/' not in host:
      raise RuntimeError(f'test tried to reach the network: {address!r}')
    return real_connect(self, address)

  monkeypatch.setattr(socket.socket, 'connect', guarded_connect)


@pytest.fixture(scope='session')
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
  """A TFDS data_dir holding the prepared embedded digits, made once per test session."""
  from lr_study.data.sources import prepare_dataset  # pylint: disable=g-import-not-at-top
  from lr_study.study import dataset_config  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.getbasetemp() / 'tfds_digits')
  prepare_dataset(dataset_config('digits', data_dir=data_dir))
  return data_dir
