"""cffi build of corral's native core (out-of-line API mode).

Two products: the extension `supervisor._corral_native` (spawn, the few
syscalls Python lacks, and the kernel's and our header's constants), and the
`corral-monitor` executable, built by setup.py from the same sources.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

# Strict warnings for our own C; CORRAL_ASAN=1 builds with AddressSanitizer.
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
LDFLAGS: list[str] = []
# The monitor links statically: one runs per container, and a static binary
# execs without the dynamic loader and keeps fewer private pages (no relocated
# GOT, no loader state). Against musl where musl-gcc is installed: glibc's
# static start-up alone costs ~0.4 ms a process on a VM (its CPU feature probe
# runs dozens of CPUID instructions, each a VM exit: ~6 us here), musl's none.
MONITOR_LDFLAGS = ["-static"]
if os.environ.get("CORRAL_ASAN"):
    CFLAGS += ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1"]
    LDFLAGS += ["-fsanitize=address"]
    MONITOR_LDFLAGS = LDFLAGS


def musl_command(build_temp: Path) -> list[str] | None:
    """musl-gcc and the include path it needs for the kernel's headers (it
    searches only musl's own; Debian has no musl kernel-headers package), or
    None where musl-gcc is missing, or for a sanitizer build (glibc's then)."""
    musl = shutil.which("musl-gcc")
    if musl is None or os.environ.get("CORRAL_ASAN") or os.environ.get("CORRAL_GLIBC_MONITOR"):
        return None
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    headers = build_temp / "kernel-headers"
    headers.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("linux", "/usr/include/linux"),
        ("asm", f"/usr/include/{multiarch}/asm"),
        ("asm-generic", "/usr/include/asm-generic"),
    ):
        link = headers / name
        if not os.path.isdir(target):
            return None
        if not link.is_symlink():
            link.symlink_to(target)
    return [musl, "-isystem", str(headers)]


MONITOR_SOURCES = ["monitor.c", "container.c", "plan.c"]

_CONSTANTS = [
    # namespaces
    "CLONE_NEWNS",
    "CLONE_NEWUTS",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWPID",
    "CLONE_NEWCGROUP",
    "CLONE_NEWUSER",
    "CLONE_NEWTIME",
    # mount flags
    "MS_RDONLY",
    "MS_NOSUID",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_SYNCHRONOUS",
    "MS_REMOUNT",
    "MS_MANDLOCK",
    "MS_DIRSYNC",
    "MS_NOATIME",
    "MS_NODIRATIME",
    "MS_BIND",
    "MS_MOVE",
    "MS_REC",
    "MS_SILENT",
    "MS_UNBINDABLE",
    "MS_PRIVATE",
    "MS_SLAVE",
    "MS_SHARED",
    "MS_RELATIME",
    "MS_STRICTATIME",
    "MS_LAZYTIME",
    # capabilities
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    # file types for device nodes
    "S_IFCHR",
    "S_IFBLK",
    "S_IFIFO",
]


def _syscall_names() -> list[str]:
    """Every __NR_ name the C library's headers define for this architecture:
    the seccomp compiler (supervisor/runtime/seccomp.py) maps names to numbers
    with them, so no table is written by hand."""
    out = subprocess.run(
        [os.environ.get("CC", "gcc"), "-dM", "-E", "-"],
        input="#include <sys/syscall.h>\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(set(re.findall(r"^#define (__NR_\w+) ", out, re.M)))


CDEF = (
    "\n".join(f"#define {name} ..." for name in [*_CONSTANTS, *_syscall_names()])
    + "\n#define CORRAL_AUDIT_ARCH ..."
    + """
enum corral_tag { CORRAL_T_ROOTFS, CORRAL_T_ROOTFS_RO, CORRAL_T_ROOT_PROPAGATION,
    CORRAL_T_NAMESPACES, CORRAL_T_NS_PATH, CORRAL_T_HOSTNAME, CORRAL_T_MOUNT,
    CORRAL_T_DEVICE, CORRAL_T_SYMLINK, CORRAL_T_MASK, CORRAL_T_READONLY,
    CORRAL_T_SYSCTL, CORRAL_T_RLIMIT, CORRAL_T_USER, CORRAL_T_GROUPS, CORRAL_T_CAPS,
    CORRAL_T_NO_NEW_PRIVS, CORRAL_T_UMASK, CORRAL_T_OOM_SCORE_ADJ, CORRAL_T_CWD,
    CORRAL_T_ARG, CORRAL_T_ENV, CORRAL_T_TERMINAL, CORRAL_T_CGROUP_JOIN,
    CORRAL_T_CGROUP_DIR, CORRAL_T_OOM_FILE, CORRAL_T_START_FIFO, CORRAL_T_EXIT_FILE,
    CORRAL_T_LOG_FILE, CORRAL_T_TMPFS_RO, CORRAL_T_OVERLAY, CORRAL_T_JOIN,
    CORRAL_T_LOG_LIMITS, CORRAL_T_CTL_FIFO,
    CORRAL_T_CONSOLE_SIZE, CORRAL_T_STDIN_FIFO, CORRAL_T_SECCOMP, CORRAL_T_UID_MAP,
    CORRAL_T_GID_MAP, CORRAL_T_HOOKS_FIFO, CORRAL_T_HANDOFF, CORRAL_T_NO_PIVOT,
    CORRAL_T_PRESERVE_FDS,
    ... };
enum corral_mount_kind { CORRAL_MOUNT_FS, CORRAL_MOUNT_BIND, CORRAL_MOUNT_REMOUNT, ... };
enum corral_step { CORRAL_S_READY, CORRAL_S__COUNT, ... };
enum corral_report_kind { CORRAL_R_CREATED, CORRAL_R_FAILED, CORRAL_R_HOOKS, ... };

struct corral_error {
    int32_t step;
    int32_t err;
    char path[...];
    char detail[...];
};
struct corral_report {
    int32_t kind;
    int32_t pid;
    struct corral_error error;
};

const char *corral_step_name(int step);
int corral_spawn(const char *path, char *const argv[], char *const envp[],
                 const int *fds, int nfds, int setsid, int nsfd, int nstypes, int *pidfd);
int corral_setns(int fd, int nstype);
int corral_plan_check(const unsigned char *buf, size_t len, struct corral_error *err);
int corral_open_in_root(const char *root, const char *path, int flags);
int corral_open_beneath(int dirfd, const char *path, int flags);
int corral_pidfd_open(int pid);
int corral_mount(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data);
int corral_umount(const char *target, int flags);
int corral_bpf_device_attach(const void *insns, unsigned int count, int cgroup_fd,
                             char *log, unsigned int log_size);
"""
)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "supervisor._corral_native",
    """
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "corral.h"
#include "plan.h"
#include "spawn.h"

int corral_setns(int fd, int nstype) { return setns(fd, nstype); }

/* Open `path` as seen from inside `root`: symlinks and ".." resolve within
 * it (openat2 RESOLVE_IN_ROOT), so a file in an image cannot point the
 * daemon at a host file. */
int corral_open_in_root(const char *root, const char *path, int flags)
{
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return -1;
    struct open_how how = { .flags = (unsigned long long)flags | O_CLOEXEC,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
    int saved = errno;
    close(rootfd);
    errno = saved;
    return fd;
}

/* `path` resolved with `dirfd` as its root: for the rest of a path too long
 * for one lookup (PATH_MAX), continued from the directory its first part
 * reached. */
int corral_open_beneath(int dirfd, const char *path, int flags)
{
    struct open_how how = { .flags = (unsigned long long)flags | O_CLOEXEC,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Parse a plan as the monitor would, for tests and for early refusal. */
int corral_plan_check(const unsigned char *buf, size_t len, struct corral_error *err)
{
    struct corral_plan plan;
    if (plan_parse((unsigned char *)buf, len, &plan, err) < 0)
        return -1;
    int n = (int)plan.nrecs;
    plan_free(&plan);
    return n;
}
int corral_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* The daemon's own mounts (a stopped container's root, for cp): mount(2) and
 * umount2(2), nothing more. */
int corral_mount(const char *source, const char *target, const char *fstype,
                 unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}
int corral_umount(const char *target, int flags) { return umount2(target, flags); }

/* Load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to the cgroup v2
 * directory `cgroup_fd` (what v1's devices.allow/deny are on v2). The program
 * stays attached while the cgroup exists. With `log`, the verifier's words on
 * a refusal go there. */
int corral_bpf_device_attach(const void *insns, unsigned int count, int cgroup_fd,
                             char *log, unsigned int log_size)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = count;
    attr.license = (uint64_t)(uintptr_t)"Apache-2.0";
    if (log && log_size) {
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    if (prog < 0)
        return -1;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr));
    int saved = errno;
    close(prog);
    errno = saved;
    return rc;
}
""",
    sources=["native/spawn.c", "native/plan.c"],  # relative: setuptools refuses absolute
    include_dirs=["native"],
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
