"""Host checks of this factory: one test per (host, check) of checks.json beside this file.

The checks are data rendered from factory.yaml; how each kind looks at a host is
factoryctl.verify.probes. `factoryctl verify` runs this module; by hand (testinfra, over the
rendered Ansible inventory plus the connection variables):

    pytest -p factoryctl.verify.plugin test_hosts.py --hosts=ansible://all \
        --ansible-inventory=INVENTORY [--ssh-config=SSH_CONFIG] [-n 2 --dist loadgroup]
"""

from pathlib import Path

from factoryctl.verify import plugin


def pytest_generate_tests(metafunc):
    if "check" in metafunc.fixturenames:
        metafunc.parametrize("check", plugin.params(metafunc.config, Path(__file__).with_name("checks.json")))


def test_check(check, request):
    plugin.run_check(check, request)
