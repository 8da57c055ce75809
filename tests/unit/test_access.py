"""Which address a request comes from, behind TRUSTED_PROXIES or not."""

from __future__ import annotations

import ipaddress

from order_engine.api.access import client_address
from order_engine.config import Networks

PROXIES: Networks = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("10.1.1.1", ["198.51.100.7"], ()) == "10.1.1.1"


def test_an_untrusted_peer_cannot_name_another_client() -> None:
    assert client_address("198.51.100.7", ["10.0.0.1"], PROXIES) == "198.51.100.7"


def test_the_client_is_the_nearest_hop_not_a_trusted_proxy() -> None:
    # The leftmost entry was written by the client itself and is ignored.
    forwarded = ["6.6.6.6, 203.0.113.5", "10.2.0.1"]
    assert client_address("10.0.0.1", forwarded, PROXIES) == "203.0.113.5"


def test_a_chain_of_trusted_proxies_only_names_the_first_of_them() -> None:
    assert client_address("::1", ["10.0.0.3, 10.0.0.2"], PROXIES) == "10.0.0.3"
    assert client_address("10.0.0.1", [], PROXIES) == "10.0.0.1"


def test_a_malformed_hop_stops_the_walk_at_the_last_proxy() -> None:
    assert client_address("10.0.0.1", ["not-an-address"], PROXIES) == "10.0.0.1"
