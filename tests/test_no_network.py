"""The suite's network guard (``conftest._no_network``) refuses every way out of the machine."""

from __future__ import annotations

import socket
import urllib.request

import pytest


@pytest.mark.parametrize('reach', [
    lambda: socket.create_connection(('example.com', 80), timeout=1),
    lambda: socket.getaddrinfo('pypi.org', 443),
    lambda: socket.socket().connect(('192.0.2.1', 80)),
    lambda: socket.socket().connect_ex(('192.0.2.1', 80)),
    lambda: urllib.request.urlopen('http://storage.googleapis.com/', timeout=1),
], ids=['create_connection', 'getaddrinfo', 'connect', 'connect_ex', 'urlopen'])
def test_reaching_the_network_fails_at_once(reach):
  with pytest.raises(RuntimeError, match='test tried to reach the network'):
    reach()


def test_local_connections_are_allowed():
  with socket.socket() as server:
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), timeout=1):
      pass
