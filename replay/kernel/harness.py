"""Build the syspage kernel and its initramfs, boot them under QEMU, bring the results back.

The kernel is Debian's linux-source-6.1 with the patch series in ``patches/``,
configured from ``make tinyconfig`` plus ``syspage.config``. Builds are cached in
``.cache/kernel/`` at the repository root: the tree is reused while the series
hash (patches + config fragment + source tarball) is unchanged, and rebuilt from
a clean extraction when it changes. See docs/kernel.md.

Inside the VM, ``scripts/init.sh`` runs a command script; each ``section NAME CMD``
in it prints CMD's output between markers on the serial console, which
:func:`boot` parses into :class:`Section` objects.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Callable

from syspage.errors import ReplayError

KERNEL_DIR = Path(__file__).resolve().parent
PATCH_DIR = KERNEL_DIR / "patches"
CONFIG_FRAGMENT = KERNEL_DIR / "syspage.config"
USER_DIR = KERNEL_DIR / "user"
INIT_SCRIPT = KERNEL_DIR / "scripts" / "init.sh"
REPO = KERNEL_DIR.parent.parent
DEFAULT_CACHE = REPO / ".cache" / "kernel"
SOURCE_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")  # Debian package linux-source-6.1
BUSYBOX = Path("/bin/busybox")  # Debian package busybox-static
QEMU = "qemu-system-x86_64"  # Debian package qemu-system-x86
USER_PROGRAMS = ("sp_check", "sp_bench", "sp_true")

Progress = Callable[[int, int], None]


class KernelUnavailable(ReplayError):
    """QEMU, the kernel source or another build input is not installed here."""


@dataclasses.dataclass
class Section:
    """The output of one ``section NAME CMD`` of the VM's command script."""

    name: str
    status: int | None  # CMD's exit status; None when the VM died inside the section
    lines: list[str]

    def json_lines(self) -> list[dict]:
        """Every line that is a JSON object (our programs print one per result)."""
        out = []
        for line in self.lines:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ReplayError(f"VM section {self.name}: unreadable result line {line[:120]!r}: {exc}") from exc
        return out


@dataclasses.dataclass
class BootResult:
    console: str  # the whole serial console, for diagnosis
    sections: dict[str, Section]
    accel: str  # "kvm" or "tcg"
    kernel_release: str
    seconds: float
    finished: bool  # the command script ran to its end


def missing_tools() -> list[str]:
    """What this machine lacks to build and boot the kernel (empty when nothing)."""
    missing = []
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU} (apt-get install qemu-system-x86)")
    if not SOURCE_TARBALL.is_file():
        missing.append(f"{SOURCE_TARBALL} (apt-get install linux-source-6.1)")
    if not BUSYBOX.is_file():
        missing.append(f"{BUSYBOX} (apt-get install busybox-static)")
    for tool, package in (("gcc", "gcc"), ("make", "make"), ("flex", "flex"), ("bison", "bison"),
                          ("bc", "bc"), ("patch", "patch")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (apt-get install {package})")
    return missing


@contextlib.contextmanager
def cache_lock(cache: Path = DEFAULT_CACHE):
    """One build or boot at a time per cache: parallel test runs share the tree."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def series_hash() -> str:
    """Identity of a kernel build: the patch series, the config fragment and the source."""
    h = hashlib.sha256()
    for path in sorted(PATCH_DIR.glob("*.patch")) + [CONFIG_FRAGMENT]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    st = SOURCE_TARBALL.stat()
    h.update(f"{SOURCE_TARBALL.name}:{st.st_size}".encode())
    return h.hexdigest()[:16]


def _run(cmd: list[str], cwd: Path, log, what: str) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise ReplayError(f"kernel build: {what} failed (exit {proc.returncode}); see {log.name}")


def _config_options(path: Path) -> dict[str, str]:
    options = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            options[key] = value
    return options


def _prepare_tree(tree: Path, log) -> None:
    """Fresh extraction, the patch series, the configuration."""
    cache = tree.parent
    if tree.exists():
        shutil.rmtree(tree)
    _run(["tar", "xJf", str(SOURCE_TARBALL), "-C", str(cache)], cache, log, "extracting the source")
    (cache / SOURCE_TARBALL.name.removesuffix(".tar.xz")).rename(tree)
    for patch in sorted(PATCH_DIR.glob("*.patch")):
        _run(["patch", "-p1", "--forward", "--batch", "-i", str(patch)], tree, log, f"applying {patch.name}")
    _run(["make", "tinyconfig"], tree, log, "make tinyconfig")
    _run(["scripts/kconfig/merge_config.sh", "-m", ".config", str(CONFIG_FRAGMENT)], tree, log, "merge_config")
    _run(["make", "olddefconfig"], tree, log, "make olddefconfig")
    got = _config_options(tree / ".config")
    for key, value in _config_options(CONFIG_FRAGMENT).items():
        if value == "n":
            continue
        if got.get(key) != value:
            raise ReplayError(f"{CONFIG_FRAGMENT}: {key}={value} did not survive olddefconfig (got {got.get(key)})")
    if got.get("CONFIG_SYSPAGE") != "y":
        raise ReplayError(f"{tree / '.config'}: CONFIG_SYSPAGE is not set; is the patch series applied?")


def build_kernel(cache: Path = DEFAULT_CACHE, jobs: int = 2, progress: Progress | None = None) -> Path:
    """Return the bzImage for the current series, building it when needed (minutes)."""
    missing = missing_tools()
    if missing:
        raise KernelUnavailable("cannot build the syspage kernel, missing: " + ", ".join(missing))
    cache.mkdir(parents=True, exist_ok=True)
    tree = cache / "linux"
    stamp = tree / ".syspage-series"
    bzimage = tree / "arch" / "x86" / "boot" / "bzImage"
    wanted = series_hash()
    with open(cache / "build.log", "a") as log:
        if not stamp.is_file() or stamp.read_text().strip() != wanted:
            if progress:
                progress(0, 2)
            _prepare_tree(tree, log)
            stamp.write_text(wanted + "\n")
        if progress:
            progress(1, 2)
        # make decides what is stale; a finished tree costs a few seconds here
        _run(["make", f"-j{jobs}", "bzImage"], tree, log, "make bzImage")
    if progress:
        progress(2, 2)
    return bzimage


def build_user(cache: Path = DEFAULT_CACHE) -> Path:
    """Compile the static test and benchmark programs (user/Makefile); return their directory."""
    out = cache / "user"
    proc = subprocess.run(["make", "-s", "-C", str(USER_DIR), f"OUT={out}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReplayError(f"{USER_DIR / 'Makefile'}: build failed: {proc.stderr.strip()[-2000:]}")
    return out


def _cpio_entry(out: io.BytesIO, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
    """One entry of a "newc" cpio archive, the initramfs format (Documentation/driver-api/early-userspace)."""
    encoded = name.encode() + b"\0"
    header = "070701" + "".join(f"{v:08x}" for v in (
        0, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0))
    out.write(header.encode() + encoded)
    out.write(b"\0" * (-(110 + len(encoded)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def build_initramfs(script: str, cache: Path = DEFAULT_CACHE, extra: dict[str, bytes] | None = None) -> Path:
    """An initramfs with busybox, our programs, /init and ``script`` as /run.sh."""
    user = build_user(cache)
    out = io.BytesIO()
    for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "root"):
        _cpio_entry(out, d, stat.S_IFDIR | 0o755)
    # the kernel opens /dev/console before /init runs, so it must exist in the archive
    _cpio_entry(out, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    _cpio_entry(out, "init", stat.S_IFREG | 0o755, INIT_SCRIPT.read_bytes())
    _cpio_entry(out, "run.sh", stat.S_IFREG | 0o644, script.encode())
    _cpio_entry(out, "bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes())
    _cpio_entry(out, "bin/sh", stat.S_IFLNK | 0o777, b"busybox")
    for program in USER_PROGRAMS:
        _cpio_entry(out, f"bin/{program}", stat.S_IFREG | 0o755, (user / program).read_bytes())
    for name, data in (extra or {}).items():
        _cpio_entry(out, name, stat.S_IFREG | 0o755, data)
    _cpio_entry(out, "TRAILER!!!", 0)
    path = cache / "initramfs.cpio"
    path.write_bytes(out.getvalue())
    return path


def accelerator() -> str:
    """tcg (software emulation) unless SYSPAGE_QEMU_ACCEL=kvm asks for KVM.

    On the project's machine /dev/kvm opens, but a KVM guest never gets past the
    firmware (nested virtualization), while TCG boots in seconds: so TCG by default.
    """
    wanted = os.environ.get("SYSPAGE_QEMU_ACCEL", "tcg")
    if wanted == "kvm" and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "kvm"
    return "tcg"


def host_tsc_khz() -> int | None:
    """The host's TSC frequency, which a TCG guest's TSC runs at (QEMU reads the host's TSC).

    From /proc/cpuinfo's "cpu MHz", which on a virtual or cpufreq-less host is the TSC rate
    the kernel detected; None when absent (then the guest calibrates against its PIT).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("cpu MHz"):
            try:
                return int(float(line.split(":", 1)[1]) * 1000)
            except ValueError:
                return None
    return None


# -icount shift=0: QEMU's virtual clock (and the guest's TSC) advances 1 ns per guest
# instruction, whatever the host does: timings become instruction counts, repeatable on a
# shared host (the kernel-side analogue of callgrind). sleep=off: idle time is skipped.
ICOUNT_ARGS = ["-icount", "shift=0,sleep=off"]
ICOUNT_TSC_KHZ = 1_000_000


def clock_args(accel: str, icount: bool = False) -> str:
    """Kernel parameters that keep a TCG guest on its TSC clocksource.

    tsc=reliable: the clocksource watchdog would otherwise mark the emulated TSC unstable
    (it drifts against the PIT-based jiffies under TCG) and fall back to jiffies, a 4 ms
    clock: every calibrated timing loop then measures 0 ns and runs to its cap (the replay
    "hang" of docs/kernel.md). tsc_early_khz: on a loaded host the guest's PIT calibration
    of the TSC fails now and then, and the guest is left with jiffies from the start.
    """
    if accel != "tcg":
        return ""
    khz = ICOUNT_TSC_KHZ if icount else host_tsc_khz()
    return "tsc=reliable" + (f" tsc_early_khz={khz}" if khz else "")


def parse_console(console: str) -> tuple[dict[str, Section], str, bool]:
    """Sections, kernel release and whether the script finished, from the serial output."""
    sections: dict[str, Section] = {}
    current: Section | None = None
    release = ""
    finished = False
    for raw in console.splitlines():
        line = raw.rstrip("\r")
        if "@@SYSPAGE-BOOTED " in line:  # kernel messages may share the line
            release = line.split("@@SYSPAGE-BOOTED ", 1)[1].split("@@", 1)[0]
        elif line.startswith("@@SYSPAGE-BEGIN "):
            name = line.removeprefix("@@SYSPAGE-BEGIN ").rstrip("@")
            current = Section(name, None, [])
            sections[name] = current
        elif line.startswith("@@SYSPAGE-END ") and current is not None:
            current.status = int(line.rstrip("@").split()[-1])
            current = None
        elif line.startswith("@@SYSPAGE-DONE@@"):
            finished = True
        elif current is not None:
            current.lines.append(line)
    return sections, release, finished


def boot(bzimage: Path, initramfs: Path, timeout: float = 900, cmdline: str = "",
         memory: str = "1024M", cpus: int = 1, icount: bool = False) -> BootResult:
    """Boot under QEMU until /init powers off; return the parsed console.

    One vCPU: the minimal config has no ACPI or MP-table parsing, so the guest
    would use one CPU anyway (threads interleave by preemption).
    """
    if shutil.which(QEMU) is None:
        raise KernelUnavailable(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    accel = accelerator()
    cpu = ["-enable-kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg", "-cpu", "max"]
    if icount:
        if accel != "tcg":
            raise ReplayError("instruction counting (-icount) needs TCG, not KVM")
        cpu += ICOUNT_ARGS
    cmd = [QEMU, *cpu, "-m", memory, "-smp", str(cpus), "-nographic", "-no-reboot",
           "-kernel", str(bzimage), "-initrd", str(initramfs),
           "-append", f"console=ttyS0 quiet panic=-1 {clock_args(accel, icount)} {cmdline}".strip()]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        console = (exc.stdout or b"").decode(errors="replace")
        raise ReplayError(f"VM did not power off within {timeout:.0f} s; console tail: {console[-1500:]!r}") from exc
    console = proc.stdout.decode(errors="replace")
    sections, release, finished = parse_console(console)
    if proc.returncode != 0 or not release:
        raise ReplayError(f"VM failed (qemu exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}"
                          f" console tail: {console[-1500:]!r}")
    return BootResult(console, sections, accel, release, time.monotonic() - t0, finished)


def run_in_vm(script: str, timeout: float = 900, cmdline: str = "", cache: Path = DEFAULT_CACHE,
              progress: Progress | None = None, icount: bool = False) -> BootResult:
    """Build what is stale, boot once, run ``script`` (sh, with ``section NAME CMD``) inside."""
    with cache_lock(cache):
        bzimage = build_kernel(cache, progress=progress)
        initramfs = build_initramfs(script, cache)
        return boot(bzimage, initramfs, timeout=timeout, cmdline=cmdline, icount=icount)


# sp_replay's arguments after PLAN PROC (replay/engine/sp_replay_main.c)
REPLAY_IMPLS = ("syscall", "page", "page-kernel")


@dataclasses.dataclass
class PlanRun:
    """How to replay a plan file inside the VM: one ``sp_replay`` per traced process and round."""

    procs: tuple[int, ...] = (0,)
    rounds: int = 1              # worker rounds: each a fresh set of replay processes
    mode: str = "tight"
    samples: int = 5
    warmups: int = 1
    min_sample_ns: int = 1_000_000
    locking: str = "page"
    impls: tuple[str, ...] = REPLAY_IMPLS
    min_class_ns: int = 0
    max_sample_ns: int = 0
    timeout_s: int = 600         # per sp_replay run, enforced inside the VM (busybox timeout)

    def script(self) -> str:
        """Command-script lines: section replay-ROUND-PROC for each run."""
        unknown = [i for i in self.impls if i not in REPLAY_IMPLS]
        if unknown or not self.impls:
            raise ReplayError(f"sp_replay implementations {unknown or self.impls}: known {', '.join(REPLAY_IMPLS)}")
        args = (f"{self.mode} {self.samples} {self.warmups} {self.min_sample_ns} {self.locking} "
                f"{','.join(self.impls)} {self.min_class_ns} {self.max_sample_ns}")
        # SIGKILL after timeout_s: a run that cannot finish fails its section instead of the boot
        return "".join(f"section replay-{w}-{p} timeout -s KILL {self.timeout_s} /bin/sp_replay /plan {p} {args}\n"
                       for w in range(self.rounds) for p in self.procs)

    def results(self, boot: BootResult, what: str = "plan") -> list[list[dict]]:
        """[round][proc index] -> sp_replay's JSON result; ReplayError naming the failed run."""
        rounds = []
        for w in range(self.rounds):
            outcomes = []
            for p in self.procs:
                section = boot.sections.get(f"replay-{w}-{p}")
                if section is None or section.status != 0:
                    tail = "\n".join(section.lines[-20:]) if section else boot.console[-1500:]
                    why = " (killed by the in-VM timeout)" if section and section.status == 137 else ""
                    raise ReplayError(f"{what}: replay of process {p} (round {w}) failed in the VM{why}: {tail}")
                records = section.json_lines()
                if len(records) != 1:
                    raise ReplayError(f"{what}: replay of process {p} (round {w}) printed {len(records)} results")
                outcomes.append(records[0])
            rounds.append(outcomes)
        return rounds


def replay_files(plan_file: str | Path, cache: Path = DEFAULT_CACHE) -> dict[str, bytes]:
    """The initramfs files a plan replay needs: the static engine and the plan (/plan)."""
    from syspage.replay import static

    plan_path = Path(plan_file)
    if not plan_path.is_file():
        raise ReplayError(f"{plan_path}: no such plan file")
    program = static.build(cache / "engine")
    return {"bin/sp_replay": program.read_bytes(), "plan": plan_path.read_bytes()}


def run_plan_in_vm(plan_file: str | Path, run: PlanRun | None = None, timeout: float = 1800,
                   cache: Path = DEFAULT_CACHE, progress: Progress | None = None) -> dict:
    """Replay traced processes of a plan file inside the patched kernel's VM, in one boot.

    Runs the replay engine's static program (syspage.replay.static) for each process and
    round of ``run`` with its implementations: syscall, page (the simulated page) and
    page-kernel (the kernel's real pages, replay/engine/sp_kernel_page.c), interleaved
    inside each replay process. Returns {"accel", "kernel_release", "clocksource", "vcpus",
    "boot_seconds", "rounds": [round][proc] -> the program's JSON result}.
    """
    run = run or PlanRun()
    script = ("section clocksource cat /sys/devices/system/clocksource/clocksource0/current_clocksource\n"
              "section clock-log sh -c 'dmesg | grep -i -E \"tsc|clocksource\"'\n")
    script += run.script()
    with cache_lock(cache):
        extra = replay_files(plan_file, cache)
        bzimage = build_kernel(cache, progress=progress)
        initramfs = build_initramfs(script, cache, extra=extra)
        result = boot(bzimage, initramfs, timeout=timeout)
    clock = result.sections.get("clocksource")
    return {
        "accel": result.accel,
        "kernel_release": result.kernel_release,
        "clocksource": clock.lines[0].strip() if clock and clock.lines else "",
        "clock_log": [line.strip() for line in result.sections["clock-log"].lines]
        if "clock-log" in result.sections else [],
        "vcpus": 1,
        "boot_seconds": round(result.seconds, 1),
        "rounds": run.results(result, str(plan_file)),
    }
