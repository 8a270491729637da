# The golden trees hold rendered files (verify/test_hosts.py among them): data, not tests.
collect_ignore_glob = ["*/expected/*"]
