"""The lab host's network: an address on the bridge subnet and no route out (issue 14: a lab
host reaches nothing but the bridge). The lab test test_status_lab checks the kernel agrees."""

from __future__ import annotations

import ipaddress

from factoryctl.engines.lab.net import HostLink, host_net_script


def test_a_host_gets_its_address_and_no_route_of_its_own():
    link = HostLink("fctlbr0-node01", "fctlbr0-v1", "02:00:00:00:00:01", "10.77.0.11/24")
    lines = host_net_script(link).splitlines()
    assert lines == ["link set lo up", "addr add 10.77.0.11/24 dev eth0", "link set eth0 up"]
    # No `route` command at all: the only route is the connected one the kernel derives from
    # the address, which covers the bridge subnet and nothing else.
    assert not any(line.split()[0] == "route" or " via " in line or "default" in line for line in lines)
    connected = ipaddress.ip_interface("10.77.0.11/24").network
    assert ipaddress.ip_address("1.1.1.1") not in connected
