"""A one-node SLURM cluster on localhost for the `slurm` tests.

Debian's `slurmctld`, `slurmd` and `munged` run in the foreground as children of this
process, with their configuration, state, sockets and logs under one directory, on
ports chosen free at start. `stop()` ends exactly the daemons it started, by pid.

    python tests/slurm_cluster.py install   # apt-get the packages when absent (root)
    python tests/slurm_cluster.py check     # start a cluster, run one job, stop

What it needs: the packages (`slurmctld slurmd slurm-client munge`), root (slurmd
starts jobs as their owner), and a writable directory. No systemd, no cgroups
(`proctrack/linuxproc`, `task/none`), no network but 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = (
    "slurmctld",
    "slurmd",
    "munged",
    "sbatch",
    "srun",
    "squeue",
    "scontrol",
    "scancel",
    "sacct",
)
NODE = "pvmcnode"
PARTITION = "debug"


class Unavailable(RuntimeError):
    """SLURM cannot run here; the message says what is missing."""


def missing_binaries() -> list:
    return [b for b in BINARIES if shutil.which(b, path=_sbin_path()) is None]


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def install() -> None:
    """apt-get the packages when a binary is missing; Unavailable if that fails."""
    if not missing_binaries():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(
            f"SLURM is not installed ({', '.join(missing_binaries())} "
            f"missing) and apt-get as root is not available to install "
            f"{' '.join(PACKAGES)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise Unavailable(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
    if missing_binaries():
        raise Unavailable(f"still missing after apt-get: {missing_binaries()}")


def _free_ports(n: int) -> list:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


SLURM_CONF = """\
ClusterName=pvmctest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge/munge.socket
StateSaveLocation={dir}/ctld
SlurmdSpoolDir={dir}/slurmd
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=600
FirstJobId={first_job_id}
KillWait=30
InactiveLimit=0
Waittime=0
NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


class Cluster:
    """A running one-node cluster; use as a context manager or call start/stop."""

    def __init__(self, root: Path, cpus: int = 2):
        self.dir = Path(root).resolve()
        self.cpus = cpus
        self.procs: dict = {}
        self.conf = self.dir / "slurm.conf"

    # --------------------------------------------------------------------- set-up
    def _write_files(self) -> None:
        for sub in ("munge", "ctld", "slurmd"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "munge").chmod(0o755)  # munged wants the socket reachable
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        ctld_port, slurmd_port = _free_ports(2)
        # Job ids differ from one cluster to the next: MPICH names its shared memory
        # after the PMI job id ("<job>.<step>"), and a segment that a killed job left
        # in /dev/shm would be opened by the next job of the same id.
        self.conf.write_text(
            SLURM_CONF.format(
                host=socket.gethostname().split(".")[0],
                dir=self.dir,
                ctld_port=ctld_port,
                slurmd_port=slurmd_port,
                node=NODE,
                cpus=self.cpus,
                partition=PARTITION,
                first_job_id=random.randint(10_000, 9_000_000),
            )
        )

    def env(self) -> dict:
        """What a client needs: SLURM_CONF (the munge socket is named in it)."""
        return {"SLURM_CONF": str(self.conf)}

    def _spawn(self, name: str, cmd: list) -> None:
        log = open(self.dir / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, **self.env()),
            start_new_session=True,
        )
        log.close()

    def start(self, timeout: float = 60.0) -> "Cluster":
        """Install when needed and start the daemons; Unavailable (with every daemon
        already started stopped again) when SLURM cannot run here."""
        install()
        if os.geteuid() != 0:
            raise Unavailable("slurmd must run as root to start jobs (not root here)")
        try:
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_daemons(self, timeout: float) -> None:
        self._write_files()
        m = self.dir / "munge"
        self._spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={m}/munge.socket",
                f"--key-file={m}/munge.key",
                f"--pid-file={m}/munged.pid",
                f"--log-file={m}/munged.log",
                f"--seed-file={m}/munged.seed",
            ],
        )
        self._wait(lambda: (m / "munge.socket").exists(), timeout, "munged")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "the node to come up idle")

    def _node_idle(self) -> bool:
        res = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
        return res.returncode == 0 and res.stdout.strip().startswith("idle")

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise Unavailable(
                        f"{name} exited with {p.returncode} while waiting "
                        f"for {what}:\n{self.logs()}"
                    )
            if ready():
                return
            time.sleep(0.2)
        raise Unavailable(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.logs()}")

    def logs(self, tail: int = 15) -> str:
        out = []
        for f in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")):
            lines = f.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(out)

    # --------------------------------------------------------------------- use
    def run(self, cmd: list, check: bool = True, **kw) -> subprocess.CompletedProcess:
        env = dict(kw.pop("env", None) or os.environ, **self.env())
        res = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=kw.pop("timeout", 30), **kw
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stderr}")
        return res

    # --------------------------------------------------------------------- tear-down
    def stop(self) -> None:
        """Cancel every job, then end the daemons this object started (by pid)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run(["scancel", "--full", "--signal=KILL", "--user", _user()], check=False)
            time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _which(name: str) -> str:
    path = shutil.which(name, path=_sbin_path())
    if path is None:
        raise Unavailable(f"{name} is not installed")
    return path


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def main(argv: list) -> int:
    if argv[1:] == ["install"]:
        install()
        return 0
    if argv[1:] == ["check"]:
        import tempfile

        with tempfile.TemporaryDirectory() as d, Cluster(Path(d)) as c:
            jid = c.run(["sbatch", "--parsable", "--wrap", "hostname"], cwd=d).stdout
            print("submitted", jid.strip())
            time.sleep(3)
            print(c.run(["scontrol", "show", "job", jid.strip()]).stdout)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
