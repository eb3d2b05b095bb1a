"""Sweep workers (``sft_tilt.harness.sweep_workers``): CPU groups, thread settings, claims across processes, and the
``sweep --workers`` command line."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sft_tilt.harness import sweep_workers as sw


@pytest.mark.parametrize("n, cpus, expected", [
    (1, [0, 1], [(0, 1)]),
    (2, [0, 1], [(0,), (1,)]),
    (2, [0, 1, 2, 3], [(0, 1), (2, 3)]),
    (2, [4, 5, 6], [(4, 5), (6,)]),
    (3, [0, 2, 4, 6, 8, 10, 12], [(0, 2, 4), (6, 8), (10, 12)]),
])
def test_cpu_groups_split_the_cpus_into_disjoint_near_equal_groups(n, cpus, expected):
    groups = sw.cpu_groups(n, cpus)
    assert groups == expected
    assert sorted(c for g in groups for c in g) == sorted(cpus)


@pytest.mark.parametrize("n, cpus, named", [(0, [0], "workers"), (True, [0], "workers"), (2.0, [0, 1], "workers"),
                                            (3, [0, 1], "workers"), (1, [0, 0], "cpus")])
def test_cpu_groups_refuse_bad_counts_naming_the_argument(n, cpus, named):
    with pytest.raises(ValueError, match=f"^{named}"):
        sw.cpu_groups(n, cpus)


def test_cpu_groups_default_to_this_process_s_cpus():
    assert sw.cpu_groups(1) == [tuple(sw.available_cpus())]
    if hasattr(os, "sched_getaffinity"):
        assert set(sw.available_cpus()) == os.sched_getaffinity(0)


def test_worker_environment_sizes_xla_s_thread_pool_and_keeps_existing_flags():
    base = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PATH": "/bin"}
    one = sw.worker_environment(base, 1)
    assert one["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=1",
                                        "--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"]
    assert one["PATH"] == "/bin" and one["OMP_NUM_THREADS"] == "1" and base["XLA_FLAGS"].count("--") == 1
    two = sw.worker_environment({}, 2)
    assert two["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2"
    with pytest.raises(ValueError, match="^n_threads"):
        sw.worker_environment({}, 0)


def test_a_claim_is_exclusive_until_released(tmp_path):
    folder = tmp_path / "claims"
    assert sw.claim(folder, "abc")
    assert (folder / "abc.claim").read_text().strip() == str(os.getpid())
    assert not sw.claim(folder, "abc")
    assert sw.claim(folder, "def")
    sw.release(folder, "abc")
    assert sw.claim(folder, "abc")
    sw.clear_claims(folder)
    assert list(folder.iterdir()) == []
    for bad in ("", ".x", "a/b"):
        with pytest.raises(ValueError, match="^key"):
            sw.claim(folder, bad)


def test_run_claimed_skips_claimed_runs_and_releases_even_when_a_run_raises(tmp_path):
    folder = tmp_path / "claims"
    assert sw.claim(folder, "b")  # another worker has it
    ran = []
    assert sw.run_claimed(["a", "b", "c"], str, ran.append, folder) == ["a", "c"]
    assert ran == ["a", "c"] and sorted(p.name for p in folder.iterdir()) == ["b.claim"]

    def fail(item):
        raise RuntimeError(item)

    with pytest.raises(RuntimeError, match="d"):
        sw.run_claimed(["d"], str, fail, folder)
    assert not (folder / "d.claim").exists()  # the next sweep tries it again


WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from sft_tilt.harness.sweep_workers import run_claimed
    folder, log = Path(sys.argv[1]), sys.argv[2]
    def run(key):  # like run_one: a finished run is read, not computed
        done = folder.parent / f"{key}.done"
        if done.exists():
            return
        with open(log, "a") as f:
            f.write(f"{key} {os.getpid()}\\n")
        time.sleep(0.02)
        done.touch()
    open(folder.parent / f"ready-{os.getpid()}", "w").close()
    while len(list(folder.parent.glob("ready-*"))) < 2:  # start together, so both take part
        time.sleep(0.01)
    run_claimed([f"run{i:02d}" for i in range(24)], str, run, folder)
    """
)


def test_two_processes_compute_every_run_exactly_once(tmp_path):
    """Two worker processes walk the same 24 runs: each run is computed once, by one of them. A worker that reaches
    a run after the other has finished it and released its claim gets the claim, and finds the run finished (the
    harness's ``run_one`` reads a stored result); on a loaded machine one worker lags enough for that to happen."""
    folder, log = tmp_path / "claims", tmp_path / "log.txt"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(folder), str(log)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = [line.split() for line in log.read_text().splitlines()]
    assert sorted(key for key, _ in lines) == [f"run{i:02d}" for i in range(24)]
    assert {pid for _, pid in lines} <= {str(p.pid) for p in procs}
    assert list(folder.iterdir()) == []


REPORT = textwrap.dedent(
    """
    import json, os, sys
    index = sys.argv[sys.argv.index("--worker-index") + 1]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    json.dump({"argv": sys.argv[1:], "cpus": cpus, "xla": os.environ.get("XLA_FLAGS")},
              open(os.path.join(sys.argv[1], f"worker{index}.json"), "w"))
    sys.exit(3 if index == "1" else 0)
    """
)


def test_launched_workers_get_their_index_cpus_and_threads_and_report_exit_codes(tmp_path):
    cpus = sw.available_cpus()[:2]
    n = len(cpus)
    codes = sw.launch_workers([sys.executable, "-c", REPORT, str(tmp_path), "--quiet"], n, cpus=cpus,
                              environ={**os.environ, "XLA_FLAGS": ""})
    assert codes == [0, 3][:n]
    for i, group in enumerate(sw.cpu_groups(n, cpus)):
        got = json.loads((tmp_path / f"worker{i}.json").read_text())
        assert got["argv"] == [str(tmp_path), "--quiet", "--worker-index", str(i)]
        if got["cpus"] is not None:
            assert got["cpus"] == list(group)
        assert got["xla"].endswith(f"intra_op_parallelism_threads={len(group)}")


# -- the command line ------------------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, tmp_path):
    from sft_tilt.harness import __main__ as cli

    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    return cli


def test_sweep_with_workers_launches_them_then_reads_the_runs(cli, monkeypatch, tmp_path):
    import sft_tilt.harness.experiments as ex

    stale = tmp_path / "runs" / sw.CLAIMS_FOLDER / "deadbeef.claim"
    stale.parent.mkdir(parents=True)
    stale.write_text("12345\n")  # left by a worker that died
    launched, read = [], []
    monkeypatch.setattr(sw, "launch_workers", lambda command, n: launched.append((command, n)) or [0] * n)
    monkeypatch.setattr(ex, "lr_tradeoff", lambda *a, **k: read.append("lr"))
    argv = ["sweep", "--preset", "default", "--experiment", "lr", "--workers", "2", "--quiet"]
    monkeypatch.setattr(sw, "cpu_groups", lambda n, cpus=None: [(0,), (1,)][:n])  # any machine may run this test
    assert cli.main(argv) == 0
    assert launched == [([sys.executable, "-m", "sft_tilt.harness", *argv], 2)] and read == ["lr"]
    assert not stale.exists()


def test_sweep_stops_with_an_error_when_a_worker_failed(cli, monkeypatch, capsys):
    import sft_tilt.harness.experiments as ex

    monkeypatch.setattr(sw, "launch_workers", lambda command, n: [0, 1])
    monkeypatch.setattr(sw, "cpu_groups", lambda n, cpus=None: [(0,), (1,)])
    monkeypatch.setattr(ex, "lr_tradeoff", lambda *a, **k: pytest.fail("read the runs although a worker failed"))
    assert cli.main(["sweep", "--preset", "default", "--experiment", "lr", "--workers", "2", "--quiet"]) == 1
    assert "worker exit codes [0, 1]" in capsys.readouterr().err


def test_a_worker_computes_the_unclaimed_runs_of_its_experiment_in_order(cli, monkeypatch, tmp_path, capsys):
    import sft_tilt.harness.experiments as ex
    import sft_tilt.harness.runs as runs
    from sft_tilt.harness.presets import get_preset
    from sft_tilt.harness.sweep_plan import REFERENCE_RATES, run_cost

    expected = sorted(dict.fromkeys(ex.sft_configs(get_preset("default"))),
                      key=lambda c: run_cost(c).seconds(REFERENCE_RATES))
    taken = runs.run_key(expected[1])
    assert sw.claim(tmp_path / "runs" / sw.CLAIMS_FOLDER, taken)  # the other worker has this one
    computed = []
    monkeypatch.setattr(runs, "run_one", lambda cfg, **k: computed.append(cfg))
    monkeypatch.setattr(ex, "lr_tradeoff", lambda *a, **k: pytest.fail("a worker only computes runs"))
    assert cli.main(["sweep", "--preset", "default", "--experiment", "lr", "--cheapest-first", "--workers", "2",
                     "--worker-index", "1", "--quiet"]) == 0
    assert computed == [c for c in expected if runs.run_key(c) != taken]
    assert f"worker 1: {len(expected) - 1} runs" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "runs" / sw.CLAIMS_FOLDER).iterdir()] == [f"{taken}.claim"]


@pytest.mark.parametrize("extra, message", [(["--workers", "2", "--mesh", "1x2"], "cannot be combined with --mesh"),
                                            (["--workers", "100000"], "--workers: workers: 100000 workers need"),
                                            (["--workers", "0"], "--workers")])
def test_sweep_refuses_workers_it_cannot_start(cli, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", "--preset", "default", "--quiet", *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err
