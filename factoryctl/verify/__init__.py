"""verify: host checks generated from the model (testinfra over SSH or locally), the benchmark
stage through the site's own scheduler, one result model and its writers.

    generate.py   model -> the expected checks (build/verify/checks.json, rendered)
    probes.py     how each kind of check looks at a host (testinfra Host) and judges it
    plugin.py     pytest plugin: every check's outcome as one JSON line
    run.py        runs pytest (+ testinfra, xdist) as a subprocess; connection and inventory
    hostchecks.py the stage: run_host_checks (verify, up), run_bench (bench run), HostCheckOptions
    results.py    the result model (VerifyResult: host checks + benchmark), reading pytest's
                  output, writing the run folder (verify.json, bench.json) and reading
                  run folders back (read_run, runs, latest_run: for report and cost)
    writers.py    console tables, JSON, JUnit XML (through findings/junit.py)

The benchmark stage itself lives in factoryctl/bench/ (slurm_stage, kube_stage, record).
"""
