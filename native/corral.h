/* The contract between Python (supervisor/_native.py) and the C core.
 *
 * Python plans a container and encodes the plan as a flat list of records
 * (tag, length, payload); the per-container monitor (monitor.c) reads it,
 * clones the container and the child (container.c) carries it out.  Every
 * number Python needs (tags, steps, report kinds) is read from this header
 * through cffi, never written twice. */
#ifndef CORRAL_H
#define CORRAL_H

#include <stdint.h>
#include <linux/audit.h>

/* The seccomp architecture of this build (seccomp_data.arch). */
#if defined(__x86_64__)
#define CORRAL_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CORRAL_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "Corral's seccomp support knows x86_64 and aarch64"
#endif

/* Plan records.  Payload layout per tag (native endianness, strings are
 * NUL-terminated, the length counts the NUL). */
enum corral_tag {
	CORRAL_T_ROOTFS = 1,      /* str: host path of the root filesystem      */
	CORRAL_T_ROOTFS_RO,       /* -                                           */
	CORRAL_T_ROOT_PROPAGATION,/* u64 mount flags for "/" (MS_PRIVATE|MS_REC) */
	CORRAL_T_NAMESPACES,      /* u64 CLONE_NEW* flags                        */
	CORRAL_T_NS_PATH,         /* u64 CLONE_NEW* flag, str path: join        */
	CORRAL_T_HOSTNAME,        /* str                                         */
	CORRAL_T_MOUNT,           /* u64 flags, u64 propagation, u32 kind, str
	                             source, str target, str fstype, str data    */
	CORRAL_T_DEVICE,          /* u32 mode (incl. S_IFCHR/S_IFBLK), u32 major,
	                             u32 minor, u32 uid, u32 gid, str path        */
	CORRAL_T_SYMLINK,         /* str target, str linkpath                    */
	CORRAL_T_MASK,            /* str path                                    */
	CORRAL_T_READONLY,        /* str path                                    */
	CORRAL_T_SYSCTL,          /* str key, str value                          */
	CORRAL_T_RLIMIT,          /* u32 resource, u32 pad, u64 soft, u64 hard   */
	CORRAL_T_USER,            /* u32 uid, u32 gid                            */
	CORRAL_T_GROUPS,          /* u32[] additional gids                       */
	CORRAL_T_CAPS,            /* u64 bounding, effective, inheritable,
	                             permitted, ambient                           */
	CORRAL_T_NO_NEW_PRIVS,    /* -                                           */
	CORRAL_T_UMASK,           /* u32                                         */
	CORRAL_T_OOM_SCORE_ADJ,   /* i32                                         */
	CORRAL_T_CWD,             /* str                                         */
	CORRAL_T_ARG,             /* str, repeated in order                      */
	CORRAL_T_ENV,             /* str, repeated in order                      */
	CORRAL_T_TERMINAL,        /* -: allocate a pty inside the container      */
	CORRAL_T_CGROUP_JOIN,     /* str: a v1 `tasks` file the child writes 0 to */
	CORRAL_T_CGROUP_DIR,      /* str: cgroup directory for CLONE_INTO_CGROUP */
	CORRAL_T_OOM_FILE,        /* str: memory.oom_control / memory.events     */
	CORRAL_T_START_FIFO,      /* str: wait for `start` on this FIFO          */
	CORRAL_T_EXIT_FILE,       /* str: where the monitor records the exit     */
	CORRAL_T_LOG_FILE,        /* str: monitor writes stdout/stderr here      */
	CORRAL_T_TMPFS_RO,        /* str: remount this tmpfs/mount read-only     */
	CORRAL_T_OVERLAY,         /* str lowerdirs, str upperdir, str workdir:
	                             the root is an overlay mounted (inside the
	                             container's mount namespace) at ROOTFS      */
	CORRAL_T_JOIN,            /* -: join a running container (exec): no
	                             root, mounts or pivot; NS_PATHs say where   */
	CORRAL_T_LOG_LIMITS,      /* u64 max bytes per file, u32 files kept      */
	CORRAL_T_CTL_FIFO,        /* str: a FIFO the monitor reads resizes from,
	                             lines of "ROWS COLS" for the pty            */
	CORRAL_T_CONSOLE_SIZE,    /* u32 rows, u32 columns: the pty's first size */
	CORRAL_T_STDIN_FIFO,      /* str: the container's stdin is this FIFO; the
	                             monitor holds a writer on it (no EOF when the
	                             daemon goes) until "eof" on the ctl FIFO    */
	CORRAL_T_SECCOMP,         /* struct sock_filter[]: a classic BPF program
	                             installed just before execve (or before the
	                             identity and capabilities change, without
	                             no_new_privs: that needs CAP_SYS_ADMIN)     */
	CORRAL_T_UID_MAP,         /* str: a new user namespace's uid_map lines   */
	CORRAL_T_GID_MAP,         /* str: its gid_map lines                      */
	CORRAL_T_HOOKS_FIFO,      /* str: before pivot_root, the child tells its
	                             monitor (CORRAL_S_HOOKS, reported as
	                             CORRAL_R_HOOKS) and waits for a byte on this
	                             FIFO while the caller runs the prestart,
	                             createRuntime and createContainer hooks     */
	CORRAL_T_HANDOFF,         /* str (maybe ""): runc's model, for callers
	                             that reap the container themselves
	                             (containerd's shim, a subreaper): once the
	                             container is created the monitor sends its
	                             pty master to this console socket (if it has
	                             a terminal) and exits, so the container's
	                             parent becomes the caller's subreaper        */
	CORRAL_T_NO_PIVOT,        /* -: move the root over / and chroot instead of
	                             pivot_root (runc --no-pivot: a root on a
	                             ramdisk, where pivot_root is refused)       */
	CORRAL_T_PRESERVE_FDS,    /* u32 N: the monitor got N more descriptors at
	                             5.. (after stdio, plan, report); the process
	                             gets them as 3..N+2 (runc --preserve-fds)   */
};

/* Mount kinds (CORRAL_T_MOUNT's u32). */
enum corral_mount_kind {
	CORRAL_MOUNT_FS = 0,      /* a filesystem: mount(source, t, fstype)      */
	CORRAL_MOUNT_BIND = 1,    /* a bind of a host path (file or directory)   */
	CORRAL_MOUNT_REMOUNT = 2, /* change the flags of what is at target       */
};

/* Steps, so a failure names where it happened (corral_step_name()). */
enum corral_step {
	CORRAL_S_NONE = 0,
	CORRAL_S_PLAN,
	CORRAL_S_CLONE,
	CORRAL_S_CGROUP,
	CORRAL_S_SETNS,
	CORRAL_S_UNSHARE_CGROUP,
	CORRAL_S_HOSTNAME,
	CORRAL_S_PROPAGATION,
	CORRAL_S_ROOTFS,
	CORRAL_S_RESOLVE,
	CORRAL_S_MOUNT,
	CORRAL_S_MKNOD,
	CORRAL_S_SYMLINK,
	CORRAL_S_PIVOT_ROOT,
	CORRAL_S_MASK,
	CORRAL_S_READONLY,
	CORRAL_S_SYSCTL,
	CORRAL_S_TERMINAL,
	CORRAL_S_RLIMIT,
	CORRAL_S_OOM_SCORE_ADJ,
	CORRAL_S_CWD,
	CORRAL_S_USER,
	CORRAL_S_CAPS,
	CORRAL_S_NO_NEW_PRIVS,
	CORRAL_S_START_WAIT,
	CORRAL_S_EXEC_LOOKUP,
	CORRAL_S_EXEC,
	CORRAL_S_MONITOR,
	CORRAL_S_SPAWN,
	CORRAL_S_READY,           /* not a failure: the child is set up          */
	CORRAL_S_LOOPBACK,
	CORRAL_S_SECCOMP,
	CORRAL_S_USERNS,
	CORRAL_S_HOOKS,           /* not a failure when sent alone: the child
	                             waits for its hooks (CORRAL_T_HOOKS_FIFO)   */
	CORRAL_S__COUNT,
};

#define CORRAL_PATH_MAX 512
#define CORRAL_DETAIL_MAX 256

/* What the child sends its monitor through a close-on-exec pipe: a failure,
 * or CORRAL_S_READY once set up.  EOF after READY means execve succeeded. */
struct corral_error {
	int32_t step;
	int32_t err;
	char path[CORRAL_PATH_MAX];
	char detail[CORRAL_DETAIL_MAX];
};

enum corral_report_kind {
	CORRAL_R_CREATED = 1,     /* container set up (and, without a FIFO, exec'd) */
	CORRAL_R_FAILED = 2,
	CORRAL_R_HOOKS = 3,       /* paused before pivot_root for its hooks; a
	                             CREATED or FAILED report follows           */
};

/* What the monitor sends Python once the container is created or failed
 * (after a CORRAL_R_HOOKS one, where the plan has a hooks FIFO). */
struct corral_report {
	int32_t kind;
	int32_t pid;              /* the container's pid in the caller's pid ns */
	struct corral_error error;
};

const char *corral_step_name(int step);

#endif
