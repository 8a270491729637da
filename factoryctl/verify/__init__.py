"""verify: host checks generated from the model (testinfra over SSH or locally), the benchmark
stage through the site's own scheduler, one result model and its writers.

    generate.py   model -> the expected checks (build/verify/checks.json, rendered)
    probes.py     how each kind of check looks at a host (testinfra Host) and judges it
    plugin.py     pytest plugin: every check's outcome as one JSON line
    run.py        runs pytest (+ testinfra, xdist) as a subprocess; connection and inventory
    bench.py      the benchmark stage: nccl-tests or the built-in worker through srun
    results.py    the result model (host checks + benchmark) and reading pytest's output
    writers.py    console tables, JSON, JUnit XML, the run folder (verify.json, bench.json)
"""
