/* The container's side: from clone3 to execve, carrying out the plan.
 *
 * Facts this relies on:
 * - The child starts in new mount/uts/ipc/net/pid namespaces; its cgroup
 *   namespace is unshared only after it has joined its cgroup, so the
 *   namespace's root is the container's cgroup.
 * - Every mount target is resolved with openat2(RESOLVE_IN_ROOT), so a
 *   symlink planted in the image resolves inside the root, never out of it;
 *   the mount is then made on /proc/self/fd/N, the resolved object, not on a
 *   path that could be swapped between check and use.
 * - Until execve the child is a copy of the monitor binary: it makes itself
 *   non-dumpable, so no process in the container can open /proc/1/exe; exec
 *   resets that for the container's own program.
 * - Every descriptor is marked close-on-exec before execve; the error pipe
 *   closing is how the monitor learns execve succeeded.
 * Any failure is written to the error pipe as (step, errno, path, detail)
 * and the child exits; nothing it made outlives its mount namespace. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>
#include "container.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const struct child_args *A;
/* With a user namespace: each bind mount's source, opened (by index of its
 * record) before the child became the container's root, which may not reach
 * the host paths the runtime names (a root-only state or bundle directory). */
static int *SRCFD;

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

static int in_userns(void)
{
	return (A->plan->namespaces & CLONE_NEWUSER) != 0;
}

/* In a user namespace, a remount may not clear flags the host's mount has
 * locked (nosuid, nodev, noexec, and its atime mode): keep them. */
static unsigned long keep_locked(int fd, unsigned long flags)
{
	struct statvfs sv;
	if (!in_userns() || fstatvfs(fd, &sv) < 0)
		return flags;
	if (sv.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	if (!(flags & (MS_NOATIME | MS_RELATIME | MS_STRICTATIME))) {
		if (sv.f_flag & ST_NOATIME)
			flags |= MS_NOATIME;
		else if (sv.f_flag & ST_RELATIME)
			flags |= MS_RELATIME;
	}
	return flags;
}
static _Noreturn void process_setup(const struct corral_plan *p, int fifo);

static _Noreturn void fail(int step, int err, const char *path, const char *detail)
{
	struct corral_error e;
	set_error(&e, step, err, path, detail);
	if (write(A->errfd, &e, sizeof(e)) < 0) {
		/* The monitor is gone; nobody is left to tell. */
	}
	_exit(err == ENOENT && step == CORRAL_S_EXEC_LOOKUP ? 127 : 126);
}

static void fdpath(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int openat2_in(int dirfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how = { .flags = (uint64_t)flags | O_CLOEXEC, .resolve = resolve };
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Like mkdir -p inside the root: walk `path` one component at a time from
 * rootfd, following symlinks by hand (an absolute target restarts at the
 * root, ".." never climbs above it) and creating what is missing, so a
 * dangling symlink in an image leads to a directory inside the root, never
 * outside it.  Each step opens a single name with O_NOFOLLOW below a
 * directory already inside the root. */
static int walk_create(int rootfd, const char *path, int as_file)
{
	char todo[2 * CORRAL_PATH_MAX], done[CORRAL_PATH_MAX] = "", comp[256];
	int links = 0;
	int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return -1;
	snprintf(todo, sizeof(todo), "%s", path);
	char *rest = todo;
	for (;;) {
		while (*rest == '/')
			rest++;
		if (!*rest)
			return cur;
		char *end = strchrnul(rest, '/');
		size_t n = (size_t)(end - rest);
		if (n >= sizeof(comp)) {
			errno = ENAMETOOLONG;
			goto err;
		}
		memcpy(comp, rest, n);
		comp[n] = '\0';
		rest = end;
		const char *after = rest;
		while (*after == '/')
			after++;
		int last = !*after;
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			char *slash = strrchr(done, '/');
			if (slash)
				*slash = '\0';
			close(cur);
			cur = openat2_in(rootfd, *done ? done : "/", O_PATH,
					 RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
			if (cur < 0)
				return -1;
			continue;
		}
		uint64_t res = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
		int next = openat2_in(cur, comp, O_PATH | O_NOFOLLOW, res);
		if (next < 0 && errno == ENOENT) {
			if (last && as_file) {
				int f = openat(cur, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
				if (f >= 0)
					close(f);
				else if (errno != EEXIST)
					goto err;
			} else if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
				goto err;
			}
			next = openat2_in(cur, comp, O_PATH | O_NOFOLLOW, res);
		}
		if (next < 0)
			goto err;
		struct stat st;
		if (fstat(next, &st) < 0) {
			close(next);
			goto err;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[CORRAL_PATH_MAX], joined[2 * CORRAL_PATH_MAX];
			ssize_t len = readlinkat(next, "", target, sizeof(target) - 1);
			close(next);
			if (len < 0)
				goto err;
			if (++links > 40) {
				errno = ELOOP;
				goto err;
			}
			target[len] = '\0';
			snprintf(joined, sizeof(joined), "%s/%s", target, rest);
			snprintf(todo, sizeof(todo), "%s", joined);
			rest = todo;
			if (target[0] == '/') {
				done[0] = '\0';
				close(cur);
				if ((cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 0)) < 0)
					return -1;
			}
			continue;
		}
		size_t dl = strlen(done);
		snprintf(done + dl, sizeof(done) - dl, "/%s", comp);
		close(cur);
		cur = next;
	}
err:;
	int saved = errno;
	close(cur);
	errno = saved;
	return -1;
}

/* Open path inside the root at rootfd (O_PATH); with `create`, make what is
 * missing: directories, and the last component as a file when as_file. */
static int resolve_create(int rootfd, const char *path, int as_file, int create)
{
	int fd = openat2_in(rootfd, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd;
	return walk_create(rootfd, path, as_file);
}

/* mount(2) on an already-resolved descriptor. */
static int mount_fd(const char *src, int fd, const char *fstype, unsigned long flags, const char *data)
{
	char p[64];
	fdpath(p, sizeof(p), fd);
	return mount(src, p, fstype, flags, data);
}

#define MNT_FLAG_MASK (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | \
		       MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_SYNCHRONOUS)

static void do_mount(int rootfd, const struct plan_rec *r)
{
	unsigned long flags = plan_u64(r, 0);
	unsigned long pflags = plan_u64(r, 8);
	uint32_t kind = plan_u32(r, 16);
	const char *src = plan_str(r, 20, 0), *target = plan_str(r, 20, 1);
	const char *fstype = plan_str(r, 20, 2), *data = plan_str(r, 20, 3);
	int as_file = 0;

	char srcbuf[64];
	if (kind == CORRAL_MOUNT_BIND) {
		int sfd = SRCFD ? SRCFD[r - A->plan->recs] : -1;
		if (sfd >= 0) {
			fdpath(srcbuf, sizeof(srcbuf), sfd);
			src = srcbuf;
		}
		struct stat st;
		if (stat(src, &st) < 0)
			fail(CORRAL_S_MOUNT, errno, src, "bind source");
		as_file = !S_ISDIR(st.st_mode);
	}
	int fd = resolve_create(rootfd, target, as_file, kind != CORRAL_MOUNT_REMOUNT);
	if (fd < 0)
		fail(CORRAL_S_RESOLVE, errno, target, "mount target");
	if (kind == CORRAL_MOUNT_BIND) {
		if (mount_fd(src, fd, NULL, MS_BIND | (flags & MS_REC), NULL) < 0)
			fail(CORRAL_S_MOUNT, errno, target, src);
	} else if (kind == CORRAL_MOUNT_FS) {
		if (mount_fd(*src ? src : fstype, fd, fstype, flags & ~MS_REC, *data ? data : NULL) < 0)
			fail(CORRAL_S_MOUNT, errno, target, fstype);
	}
	close(fd);
	/* Bind flags and remounts act on the mount now at target: resolve again. */
	if (kind != CORRAL_MOUNT_FS && ((flags & MNT_FLAG_MASK) || kind == CORRAL_MOUNT_REMOUNT)) {
		fd = resolve_create(rootfd, target, 0, 0);
		if (fd < 0)
			fail(CORRAL_S_RESOLVE, errno, target, "remount target");
		unsigned long rf = keep_locked(fd, MS_REMOUNT | MS_BIND | (flags & MNT_FLAG_MASK));
		if (mount_fd(NULL, fd, NULL, rf, NULL) < 0)
			fail(CORRAL_S_MOUNT, errno, target, "remount");
		close(fd);
	}
	if (pflags) {
		fd = resolve_create(rootfd, target, 0, 0);
		if (fd < 0 || mount_fd(NULL, fd, NULL, pflags, NULL) < 0)
			fail(CORRAL_S_MOUNT, errno, target, "propagation");
		close(fd);
	}
}

static int open_parent(int rootfd, const char *path, const char **name)
{
	char parent[CORRAL_PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	*name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!slash || slash == parent)
		return openat2_in(rootfd, "/", O_PATH, RESOLVE_IN_ROOT);
	*slash = '\0';
	return resolve_create(rootfd, parent, 0, 1);
}

static void do_device(int rootfd, const struct plan_rec *r)
{
	uint32_t mode = plan_u32(r, 0), major = plan_u32(r, 4), minor = plan_u32(r, 8);
	uint32_t uid = plan_u32(r, 12), gid = plan_u32(r, 16);
	const char *path = plan_str(r, 20, 0), *name;
	int pfd = open_parent(rootfd, path, &name);
	if (pfd < 0)
		fail(CORRAL_S_RESOLVE, errno, path, "device directory");
	/* O_PATH descriptors do not serve mknodat: reopen the directory. */
	int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		fail(CORRAL_S_RESOLVE, errno, path, "device directory");
	unlinkat(dfd, name, 0);
	if (in_userns()) {
		/* mknod is not for a user namespace: bind the host's node instead,
		 * as runc does (the path, before pivot_root, is the host's). */
		int f = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f < 0)
			fail(CORRAL_S_MKNOD, errno, path, "bind target");
		close(f);
		int t = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (t < 0 || mount_fd(path, t, NULL, MS_BIND, NULL) < 0)
			fail(CORRAL_S_MKNOD, errno, path, "binding the host's device");
		close(t);
		close(dfd);
		close(pfd);
		return;
	}
	if (mknodat(dfd, name, mode, makedev(major, minor)) < 0)
		fail(CORRAL_S_MKNOD, errno, path, NULL);
	if (fchmodat(dfd, name, mode & 07777, 0) < 0 ||
	    fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		fail(CORRAL_S_MKNOD, errno, path, "chown/chmod");
	close(dfd);
	close(pfd);
}

static void do_symlink(int rootfd, const struct plan_rec *r)
{
	const char *target = plan_str(r, 0, 0), *path = plan_str(r, 0, 1), *name;
	int pfd = open_parent(rootfd, path, &name);
	if (pfd < 0)
		fail(CORRAL_S_RESOLVE, errno, path, "symlink directory");
	int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (symlinkat(target, dfd, name) < 0 && errno != EEXIST))
		fail(CORRAL_S_SYMLINK, errno, path, target);
	close(dfd);
	close(pfd);
}

/* After pivot_root: hide a path (empty read-only tmpfs over a directory,
 * /dev/null over a file).  Paths that do not exist need no hiding. */
static void do_mask(int rootfd, const char *path)
{
	int fd = openat2_in(rootfd, path, O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
	if (fd < 0) {
		if (errno == ENOENT)
			return;
		fail(CORRAL_S_MASK, errno, path, NULL);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail(CORRAL_S_MASK, errno, path, NULL);
	int rc = S_ISDIR(st.st_mode)
		 ? mount_fd("tmpfs", fd, "tmpfs", MS_RDONLY, "size=0k,mode=0755")
		 : mount_fd("/dev/null", fd, NULL, MS_BIND, NULL);
	if (rc < 0)
		fail(CORRAL_S_MASK, errno, path, NULL);
	close(fd);
}

static void do_readonly(int rootfd, const char *path)
{
	int fd = openat2_in(rootfd, path, O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
	if (fd < 0) {
		if (errno == ENOENT)
			return;
		fail(CORRAL_S_READONLY, errno, path, NULL);
	}
	char self[64];
	fdpath(self, sizeof(self), fd);
	if (mount_fd(self, fd, NULL, MS_BIND | MS_REC, NULL) < 0)
		fail(CORRAL_S_READONLY, errno, path, "bind");
	close(fd);
	fd = openat2_in(rootfd, path, O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
	if (fd < 0 || mount_fd(NULL, fd, NULL, keep_locked(fd, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), NULL) < 0)
		fail(CORRAL_S_READONLY, errno, path, "remount");
	close(fd);
}

static void do_sysctl(int rootfd, const struct plan_rec *r)
{
	const char *key = plan_str(r, 0, 0), *value = plan_str(r, 0, 1);
	char path[CORRAL_PATH_MAX];
	snprintf(path, sizeof(path), "/proc/sys/%s", key);
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	int fd = openat2_in(rootfd, path, O_WRONLY | O_TRUNC, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		fail(CORRAL_S_SYSCTL, errno, path, value);
	close(fd);
}

static void send_fd(int sock, int fd)
{
	char byte = 0, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	memset(cbuf, 0, sizeof(cbuf));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(sock, &msg, 0) < 0)
		fail(CORRAL_S_TERMINAL, errno, NULL, "sending the pty to the monitor");
}

static void setup_terminal(const struct corral_plan *p)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail(CORRAL_S_TERMINAL, errno, "/dev/ptmx", NULL);
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		fail(CORRAL_S_TERMINAL, errno, "/dev/ptmx", "unlockpt");
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		fail(CORRAL_S_TERMINAL, errno, "/dev/ptmx", "TIOCGPTPEER");
	/* The OCI consoleSize: set before the process runs, so its first look at
	 * the terminal sees the client's size. */
	if (p->console_rows && p->console_cols) {
		struct winsize ws = { .ws_row = (unsigned short)p->console_rows,
				      .ws_col = (unsigned short)p->console_cols };
		if (ioctl(master, TIOCSWINSZ, &ws) < 0)
			fail(CORRAL_S_TERMINAL, errno, "/dev/ptmx", "TIOCSWINSZ");
	}
	send_fd(A->consock, master);
	close(master);
	if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
		fail(CORRAL_S_TERMINAL, errno, NULL, "making the pty the controlling terminal");
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			fail(CORRAL_S_TERMINAL, errno, NULL, "dup2");
	if (slave > 2)
		close(slave);
}

static void install_seccomp(const struct corral_plan *p)
{
	/* plan records are 8-byte aligned, and sock_filter is 8 bytes */
	struct sock_fprog prog = { .len = (unsigned short)(p->seccomp->len / 8),
				   .filter = (struct sock_filter *)p->seccomp->data };
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		fail(CORRAL_S_SECCOMP, errno, NULL, NULL);
}

static void set_user_and_caps(const struct corral_plan *p)
{
	if (p->has_caps) {
		/* Bounding set first: dropping needs CAP_SETPCAP, which we hold now. */
		for (int cap = 0; cap <= 63; cap++) {
			if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
				break;
			if (!(p->caps[0] & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
				fail(CORRAL_S_CAPS, errno, NULL, "PR_CAPBSET_DROP");
		}
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			fail(CORRAL_S_CAPS, errno, NULL, "PR_SET_KEEPCAPS");
	}
	if (p->has_user) {
		if (setgroups(p->ngroups, (const gid_t *)p->groups) < 0)
			fail(CORRAL_S_USER, errno, NULL, "setgroups");
		if (setresgid(p->gid, p->gid, p->gid) < 0)
			fail(CORRAL_S_USER, errno, NULL, "setresgid");
		if (setresuid(p->uid, p->uid, p->uid) < 0)
			fail(CORRAL_S_USER, errno, NULL, "setresuid");
	}
	if (p->has_caps) {
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct data[2];
		for (int i = 0; i < 2; i++) {
			data[i].effective = (uint32_t)(p->caps[1] >> (32 * i));
			data[i].inheritable = (uint32_t)(p->caps[2] >> (32 * i));
			data[i].permitted = (uint32_t)(p->caps[3] >> (32 * i));
		}
		if (syscall(SYS_capset, &hdr, data) < 0)
			fail(CORRAL_S_CAPS, errno, NULL, "capset");
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
			fail(CORRAL_S_CAPS, errno, NULL, "PR_CAP_AMBIENT_CLEAR_ALL");
		for (int cap = 0; cap <= 63; cap++)
			if ((p->caps[4] & (1ULL << cap)) &&
			    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
				fail(CORRAL_S_CAPS, errno, NULL, "PR_CAP_AMBIENT_RAISE");
	}
}

/* execvpe() searches the caller's PATH; the container's PATH is in envp. */
static void lookup_exec(const struct corral_plan *p, char *out, size_t len)
{
	const char *arg0 = p->argv[0];
	if (strchr(arg0, '/')) {
		snprintf(out, len, "%s", arg0);
		if (access(out, X_OK) < 0)
			fail(CORRAL_S_EXEC_LOOKUP, errno, arg0, NULL);
		return;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (size_t i = 0; i < p->envc; i++)
		if (!strncmp(p->envp[i], "PATH=", 5))
			path = p->envp[i] + 5;
	int saw_eacces = 0;
	while (*path) {
		const char *end = strchrnul(path, ':');
		int n = (int)(end - path);
		snprintf(out, len, "%.*s%s%s", n, path, n ? "/" : "", arg0);
		if (access(out, X_OK) == 0) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
				return;
		} else if (errno == EACCES) {
			saw_eacces = 1;
		}
		path = *end ? end + 1 : end;
	}
	fail(CORRAL_S_EXEC_LOOKUP, saw_eacces ? EACCES : ENOENT, arg0, "executable file not found in $PATH");
}

static void wait_for_start(int fifo)
{
	struct pollfd pfd = { .fd = fifo, .events = POLLIN };
	char byte;
	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			fail(CORRAL_S_START_WAIT, errno, NULL, "poll");
	if (read(fifo, &byte, 1) < 0)
		fail(CORRAL_S_START_WAIT, errno, NULL, "read");
	close(fifo);
}

/* The prestart, createRuntime and createContainer hooks run now: the
 * namespaces are made and the mounts are in place, pivot_root is next (the
 * order the runtime spec gives them). The caller runs them, so tell the
 * monitor (which reports it) and wait for one byte on the FIFO (opened early,
 * non-blocking: poll reports no hangup before a first writer); none means the
 * caller gave up (a hook failed), and it is about to kill us. */
static void wait_for_hooks(int fd, const char *path)
{
	struct corral_error msg;
	set_error(&msg, CORRAL_S_HOOKS, 0, NULL, NULL);
	if (write(A->errfd, &msg, sizeof(msg)) != sizeof(msg))
		_exit(1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			fail(CORRAL_S_HOOKS, errno, path, "poll");
	char c;
	ssize_t n;
	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	close(fd);
	if (n != 1)
		fail(CORRAL_S_HOOKS, ECANCELED, path, "the runtime gave up");
}

/* A new network namespace starts with `lo` down; containers expect it up
 * (127.0.0.1 must answer, also with --network none). */
static void bring_up_loopback(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(CORRAL_S_LOOPBACK, errno, "lo", "socket");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		fail(CORRAL_S_LOOPBACK, errno, "lo", "SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		fail(CORRAL_S_LOOPBACK, errno, "lo", "SIOCSIFFLAGS");
	close(fd);
}

/* cgroup v1: the child moves itself, one thread (itself), by writing 0 to
 * each hierarchy's `tasks` file.  Moving a whole process (cgroup.procs, or
 * another task's pid) takes the global cgroup_threadgroup_rwsem for writing,
 * which waits for an RCU grace period (5-15 ms on an idle host); moving the
 * caller's own single thread does not (kernel/cgroup/cgroup.c,
 * cgroup_procs_write_start).  The child is single-threaded, so this moves the
 * process, before it unshares its cgroup namespace or execs. */
static void join_v1_cgroups(const struct corral_plan *p)
{
	for (size_t i = 0; i < p->nrecs; i++) {
		const struct plan_rec *r = &p->recs[i];
		if (r->tag != CORRAL_T_CGROUP_JOIN)
			continue;
		const char *path = (const char *)r->data;
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			fail(CORRAL_S_CGROUP, errno, path, "joining");
		close(fd);
	}
}

/* A new user namespace: wait until the monitor has written its maps, open
 * what must be reached as the host's root (the root filesystem, the bind
 * mounts' sources), then become the namespace's root (uid and gid 0, which
 * the maps must hold; our capabilities there stay). Returns the root's
 * descriptor. */
static int enter_userns(const struct corral_plan *p)
{
	char c;
	ssize_t n;
	while ((n = read(A->userns_sync, &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		fail(CORRAL_S_USERNS, EPIPE, NULL, "the monitor did not write the maps");
	close(A->userns_sync);
	int root = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		fail(CORRAL_S_ROOTFS, errno, p->rootfs, NULL);
	SRCFD = malloc(p->nrecs * sizeof(*SRCFD));
	if (!SRCFD)
		fail(CORRAL_S_USERNS, ENOMEM, NULL, NULL);
	for (size_t i = 0; i < p->nrecs; i++) {
		const struct plan_rec *r = &p->recs[i];
		SRCFD[i] = -1;
		if (r->tag != CORRAL_T_MOUNT || plan_u32(r, 16) != CORRAL_MOUNT_BIND)
			continue;
		const char *src = plan_str(r, 20, 0);
		SRCFD[i] = open(src, O_PATH | O_CLOEXEC);
		if (SRCFD[i] < 0)
			fail(CORRAL_S_MOUNT, errno, src, "bind source");
	}
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		fail(CORRAL_S_USERNS, errno, NULL, "becoming the namespace's root (uid and gid 0 must be mapped)");
	return root;
}

/* Whether the child made a mount namespace of its own: only then may it
 * change propagation, mount, or pivot_root. */
static int own_mount_namespace(const struct corral_plan *p)
{
	if (!(p->namespaces & CLONE_NEWNS))
		return 0;
	for (size_t i = 0; i < p->nrecs; i++)
		if (p->recs[i].tag == CORRAL_T_NS_PATH && plan_u64(&p->recs[i], 0) == CLONE_NEWNS)
			return 0;
	return 1;
}

_Noreturn void container_main(const struct child_args *args)
{
	const struct corral_plan *p = args->plan;
	A = args;

	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	join_v1_cgroups(p);

	/* The FIFOs live in the host's state dir: opened now, before pivot_root
	 * and before a user namespace's root (which may not reach them) is us. */
	int fifo = -1, hooks_fd = -1;
	if (p->start_fifo) {
		fifo = open(p->start_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fifo < 0)
			fail(CORRAL_S_START_WAIT, errno, p->start_fifo, NULL);
	}
	if (p->hooks_fifo) {
		hooks_fd = open(p->hooks_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (hooks_fd < 0)
			fail(CORRAL_S_HOOKS, errno, p->hooks_fifo, NULL);
	}
	int pre_root = -1;
	if (in_userns() && !p->join)
		pre_root = enter_userns(p);
	/* Open every namespace first, then enter them: once in the container's
	 * mount namespace, /proc/PID of the host is no longer there to open. */
	int nsfd[16], nstype[16];
	const char *nspath[16];
	size_t nns = 0;
	for (size_t i = 0; i < p->nrecs && nns < 16; i++) {
		const struct plan_rec *r = &p->recs[i];
		if (r->tag != CORRAL_T_NS_PATH || plan_u64(r, 0) == CLONE_NEWPID)
			continue;
		nspath[nns] = plan_str(r, 8, 0);
		nstype[nns] = (int)plan_u64(r, 0);
		nsfd[nns] = open(nspath[nns], O_RDONLY | O_CLOEXEC);
		if (nsfd[nns] < 0)
			fail(CORRAL_S_SETNS, errno, nspath[nns], NULL);
		nns++;
	}
	for (size_t i = 0; i < nns; i++) {
		if (setns(nsfd[i], nstype[i]) < 0)
			fail(CORRAL_S_SETNS, errno, nspath[i], NULL);
		close(nsfd[i]);
	}
	if ((p->namespaces & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		fail(CORRAL_S_UNSHARE_CGROUP, errno, NULL, NULL);
	if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
		fail(CORRAL_S_HOSTNAME, errno, p->hostname, NULL);
	if (p->namespaces & CLONE_NEWNET)
		bring_up_loopback();

	if (p->join) /* exec: setns(CLONE_NEWNS) put us at the container's root */
		process_setup(p, -1);
	if (!own_mount_namespace(p)) {
		/* The caller's (or a joined) mount namespace: nothing may be mounted
		 * or pivoted there, it is not ours (the runtime refuses mounts
		 * without a new one). chroot, as runc does without CLONE_NEWNS. */
		if (chdir(p->rootfs) < 0 || chroot(".") < 0 || chdir("/") < 0)
			fail(CORRAL_S_PIVOT_ROOT, errno, p->rootfs, "chroot");
		if (hooks_fd >= 0)
			wait_for_hooks(hooks_fd, p->hooks_fifo);
		process_setup(p, fifo);
	}
	/* rootfsPropagation: shared or unbindable would make the bind of the
	 * root (EINVAL: an unbindable source) or pivot_root (EINVAL: a shared
	 * parent) fail, so until the pivot the tree is a slave (it still gets
	 * the host's mounts); the asked propagation is put on the new root
	 * after. private and slave are what they are from the start. */
	unsigned long want = p->root_propagation ? p->root_propagation : MS_REC | MS_PRIVATE;
	unsigned long first = (want & (MS_SHARED | MS_UNBINDABLE)) ? MS_REC | MS_SLAVE : want;
	if (mount(NULL, "/", NULL, first, NULL) < 0)
		fail(CORRAL_S_PROPAGATION, errno, "/", NULL);
	if (p->overlay) {
		/* Copy-on-write root, mounted in our own mount namespace: it goes
		 * away with the container, and the host never holds the mount. */
		char opts[3 * CORRAL_PATH_MAX + 64];
		snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
			 plan_str(p->overlay, 0, 0), plan_str(p->overlay, 0, 1), plan_str(p->overlay, 0, 2));
		if (mount("overlay", p->rootfs, "overlay", 0, opts) < 0)
			fail(CORRAL_S_ROOTFS, errno, p->rootfs, "overlay");
	} else if (pre_root >= 0) {
		/* A recursive bind of the descriptor opened as the host's root, put
		 * over the root itself; its descriptor is the new mount's root. */
		int tree = (int)syscall(SYS_open_tree, pre_root, "",
					OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
		if (tree < 0)
			fail(CORRAL_S_ROOTFS, errno, p->rootfs, "open_tree");
		if (syscall(SYS_move_mount, tree, "", pre_root, "",
			    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail(CORRAL_S_ROOTFS, errno, p->rootfs, "move_mount");
		close(pre_root);
		pre_root = tree;
	} else if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
		fail(CORRAL_S_ROOTFS, errno, p->rootfs, NULL);
	}
	int rootfd = pre_root >= 0 ? pre_root : open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail(CORRAL_S_ROOTFS, errno, p->rootfs, NULL);

	for (size_t i = 0; i < p->nrecs; i++) {
		const struct plan_rec *r = &p->recs[i];
		if (r->tag == CORRAL_T_MOUNT)
			do_mount(rootfd, r);
		else if (r->tag == CORRAL_T_DEVICE)
			do_device(rootfd, r);
		else if (r->tag == CORRAL_T_SYMLINK)
			do_symlink(rootfd, r);
	}

	if (hooks_fd >= 0)
		wait_for_hooks(hooks_fd, p->hooks_fifo);

	if (fchdir(rootfd) < 0)
		fail(CORRAL_S_PIVOT_ROOT, errno, p->rootfs, "fchdir");
	if (p->no_pivot) {
		/* runc --no-pivot: the root moved over / and chrooted into; the old
		 * root stays reachable by a chroot escape (why pivot_root is the
		 * default), but a root on a ramdisk cannot be pivoted. */
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			fail(CORRAL_S_PIVOT_ROOT, errno, p->rootfs, "moving the root over / (--no-pivot)");
		if (chroot(".") < 0)
			fail(CORRAL_S_PIVOT_ROOT, errno, p->rootfs, "chroot (--no-pivot)");
	} else {
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			fail(CORRAL_S_PIVOT_ROOT, errno, p->rootfs, NULL);
		/* The old root is stacked under the new one: detach it. */
		if (umount2(".", MNT_DETACH) < 0)
			fail(CORRAL_S_PIVOT_ROOT, errno, p->rootfs, "detaching the old root");
	}
	if (chdir("/") < 0)
		fail(CORRAL_S_PIVOT_ROOT, errno, "/", "chdir");
	if (first != want && mount(NULL, "/", NULL, want, NULL) < 0)
		fail(CORRAL_S_PROPAGATION, errno, "/", "the new root, after pivot_root");
	close(rootfd);
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail(CORRAL_S_PIVOT_ROOT, errno, "/", NULL);

	for (size_t i = 0; i < p->nrecs; i++)
		if (p->recs[i].tag == CORRAL_T_SYSCTL)
			do_sysctl(rootfd, &p->recs[i]);
	for (size_t i = 0; i < p->nrecs; i++) {
		const struct plan_rec *r = &p->recs[i];
		if (r->tag == CORRAL_T_MASK)
			do_mask(rootfd, (const char *)r->data);
		else if (r->tag == CORRAL_T_READONLY)
			do_readonly(rootfd, (const char *)r->data);
		else if (r->tag == CORRAL_T_TMPFS_RO) {
			int fd = resolve_create(rootfd, (const char *)r->data, 0, 0);
			if (fd < 0 || mount_fd(NULL, fd, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
				fail(CORRAL_S_READONLY, errno, (const char *)r->data, "remount");
			close(fd);
		}
	}
	if (p->rootfs_ro && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		fail(CORRAL_S_READONLY, errno, "/", "read-only root");

	close(rootfd);
	process_setup(p, fifo);
}

/* What every process needs, container init or exec (which joins a running
 * container and comes here straight after setns): terminal, limits, cwd,
 * identity, capabilities, then execve. */
static _Noreturn void process_setup(const struct corral_plan *p, int fifo)
{
	char buf[CORRAL_PATH_MAX];
	int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail(CORRAL_S_CWD, errno, "/", NULL);
	if (p->terminal)
		setup_terminal(p);

	for (size_t i = 0; i < p->nrecs; i++) {
		const struct plan_rec *r = &p->recs[i];
		if (r->tag != CORRAL_T_RLIMIT)
			continue;
		struct rlimit rl = { .rlim_cur = plan_u64(r, 8), .rlim_max = plan_u64(r, 16) };
		if (setrlimit((int)plan_u32(r, 0), &rl) < 0) {
			snprintf(buf, sizeof(buf), "resource %u", plan_u32(r, 0));
			fail(CORRAL_S_RLIMIT, errno, NULL, buf);
		}
	}
	if (p->has_oom_adj) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		int n = snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
		if (fd < 0 || write(fd, buf, n) < 0)
			fail(CORRAL_S_OOM_SCORE_ADJ, errno, "/proc/self/oom_score_adj", NULL);
		close(fd);
	}

	if (p->cwd) {
		int fd = openat2_in(rootfd, p->cwd, O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
		if (fd < 0 || fchdir(fd) < 0)
			fail(CORRAL_S_CWD, errno, p->cwd, NULL);
		close(fd);
	}
	close(rootfd);
	if (p->has_umask)
		umask(p->umask);

	/* Nothing the runtime opened may reach the container's program: every
	 * descriptor close-on-exec (the error pipe stays usable until execve).
	 * Before any seccomp filter, which need not allow close_range (runc
	 * closes its descriptors before the filter too). */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		fail(CORRAL_S_EXEC, errno, NULL, "close_range");

	/* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it
	 * while we hold it (the filter then sees the identity change and execve,
	 * which the default profile allows); with it, as late as can be. */
	if (p->seccomp && !p->no_new_privs)
		install_seccomp(p);
	set_user_and_caps(p);
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(CORRAL_S_NO_NEW_PRIVS, errno, NULL, NULL);

	char exe[CORRAL_PATH_MAX];
	lookup_exec(p, exe, sizeof(exe));

	struct corral_error ready;
	set_error(&ready, CORRAL_S_READY, 0, NULL, NULL);
	if (write(A->errfd, &ready, sizeof(ready)) != sizeof(ready))
		_exit(1);
	if (fifo >= 0)
		wait_for_start(fifo);
	if (p->seccomp && p->no_new_privs)
		install_seccomp(p);

	if (p->preserve_fds) {
		/* runc --preserve-fds: the caller's extra descriptors, which the
		 * monitor holds at 5.., become 3.. (dup2 leaves them open across
		 * execve; their sources stay close-on-exec). The error pipe moves
		 * above them first, for an execve failure's report. */
		int first = 5, top = first + (int)p->preserve_fds;
		if (A->errfd < top) {
			int moved = fcntl(A->errfd, F_DUPFD_CLOEXEC, top);
			if (moved < 0)
				fail(CORRAL_S_EXEC, errno, NULL, "moving the error pipe (--preserve-fds)");
			/* A points at the monitor's (writable) child_args. */
			((struct child_args *)A)->errfd = moved;
		}
		for (int i = 0; i < (int)p->preserve_fds; i++)
			if (dup2(first + i, 3 + i) < 0)
				fail(CORRAL_S_EXEC, errno, NULL, "passing a descriptor (--preserve-fds)");
	}

	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(exe, p->argv, p->envp);
	fail(CORRAL_S_EXEC, errno, exe, NULL);
}
