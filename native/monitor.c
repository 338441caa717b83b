/* corral-monitor: the parent of one container, in the spirit of conmon.
 *
 *   corral-monitor PLAN_FD REPORT_FD
 *
 * It reads the plan, clones the container into its namespaces and cgroup,
 * tells the caller (REPORT_FD: one struct corral_report) that the container
 * is created or why it failed, then stays as the container's parent: it
 * forwards signals, holds stdout/stderr (copying them to the log file, or a
 * pty to its own stdio), and when the container exits records the status
 * atomically in the exit file and exits with it.  It must stay small: one
 * runs per container, so it allocates nothing after the container starts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "container.h"

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static int report_fd = -1;

static void report(int kind, int pid, const struct corral_error *err)
{
	struct corral_report r;
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.pid = pid;
	if (err)
		r.error = *err;
	if (report_fd >= 0) {
		if (write(report_fd, &r, sizeof(r)) != sizeof(r)) {
			/* The caller went away; the container's fate is still recorded. */
		}
		close(report_fd);
		report_fd = -1;
	}
}

static _Noreturn void die(int step, int err, const char *path, const char *detail)
{
	struct corral_error e;
	set_error(&e, step, err, path, detail);
	report(CORRAL_R_FAILED, 0, &e);
	_exit(125);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The log file and its size cap (--log-opt max-size, max-file). */
static struct {
	int fd;
	const char *path;
	uint64_t size, max_size;
	uint32_t max_files;
} logf = { .fd = -1 };

static void log_open(int flags)
{
	struct stat st;
	logf.fd = open(logf.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | flags, 0600);
	logf.size = (logf.fd >= 0 && fstat(logf.fd, &st) == 0) ? (uint64_t)st.st_size : 0;
}

/* Keep max_files files: path.(N-1) is dropped, each path.i becomes path.(i+1),
 * the current file path.1; a new one is started.  Readers (corral logs) read
 * path.(N-1) .. path.1, path in that order. */
static void log_rotate(void)
{
	char from[CORRAL_PATH_MAX + 16], to[CORRAL_PATH_MAX + 16];
	close(logf.fd);
	if (logf.max_files <= 1) {
		log_open(O_TRUNC);
		return;
	}
	for (uint32_t i = logf.max_files - 1; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", logf.path);
		else
			snprintf(from, sizeof(from), "%s.%u", logf.path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", logf.path, i);
		rename(from, to);
	}
	log_open(0);
}

/* CRI log format, one record per line: TIME STREAM P|F CONTENT.
 *
 * A container writing as fast as it can (`yes`) sends lines of two bytes:
 * one write(2) per record ran at ~1 MB/s. Records are gathered in a buffer
 * and written when it fills and at the end of each read, so a reader of the
 * log sees everything a read brought as soon as it was read; the time prefix
 * is formatted once per read (all of a read's lines arrived together). */
static char logbuf[64 * 1024];
static size_t loglen;

static void log_flush(void)
{
	if (loglen && logf.fd >= 0 && write_all(logf.fd, logbuf, loglen) == 0)
		logf.size += loglen;
	loglen = 0;
}

static void log_put(const char *data, size_t n)
{
	while (n) {
		if (loglen == sizeof(logbuf))
			log_flush();
		size_t take = sizeof(logbuf) - loglen < n ? sizeof(logbuf) - loglen : n;
		memcpy(logbuf + loglen, data, take);
		loglen += take;
		data += take;
		n -= take;
	}
}

static void log_chunk(const char *stream, const char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char head[80];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* "TIME STREAM F " with the flag at head[h - 2], set per record. */
	int h = snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ %s F ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec, stream);
	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) : len;
		size_t rec = (size_t)h + n + 1;
		if (logf.max_size && logf.size + loglen + rec > logf.max_size && logf.size + loglen > 0) {
			log_flush();
			log_rotate();
		}
		head[h - 2] = nl ? 'F' : 'P';
		log_put(head, (size_t)h);
		log_put(buf, n);
		log_put("\n", 1);
		buf += n + (nl ? 1 : 0);
		len -= n + (nl ? 1 : 0);
	}
}

static long read_oom_kills(const char *path)
{
	char buf[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strstr(buf, "oom_kill ");
	return p ? strtol(p + 9, NULL, 10) : 0;
}

/* `s` as the body of a JSON string: quotes, backslashes, control and
 * non-ASCII bytes escaped (a path is bytes; \u00XX keeps the JSON valid). */
static size_t json_escape(char *out, size_t cap, const char *s)
{
	size_t n = 0;
	for (; *s && n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

/* exit.json: how it ended and, where the setup failed after the caller
 * heard it was ready (between the start and execve), that failure. */
static void record_exit(const char *path, int code, int sig, int oom, const struct corral_error *failed)
{
	char tmp[CORRAL_PATH_MAX + 8], buf[8192];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int n = snprintf(buf, sizeof(buf),
			 "{\"exit_code\":%d,\"signal\":%d,\"oom_killed\":%s,\"finished_at\":%lld",
			 code, sig, oom ? "true" : "false",
			 (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if (failed) {
		char epath[CORRAL_PATH_MAX * 6 + 1], edetail[CORRAL_DETAIL_MAX * 6 + 1];
		json_escape(epath, sizeof(epath), failed->path);
		json_escape(edetail, sizeof(edetail), failed->detail);
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
			      ",\"step\":\"%s\",\"errno\":%d,\"path\":\"%s\",\"detail\":\"%s\"",
			      corral_step_name(failed->step), failed->err, epath, edetail);
	}
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "}\n");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	/* Atomic, not fsynced: the state dir is runtime state (see state.py). */
	if (write_all(fd, buf, (size_t)n) == 0) {
		close(fd);
		rename(tmp, path);
		return;
	}
	close(fd);
	unlink(tmp);
}

static int stdin_keep = -1;  /* our writer on the stdin FIFO */

/* Lines on the control FIFO: "ROWS COLS" resizes the pty, "eof" closes our
 * writer on the stdin FIFO (the client closed stdin). Each line is one write
 * of a few bytes, so a read returns whole lines (PIPE_BUF). */
static void read_ctl(int ctl, int master)
{
	char buf[256];
	ssize_t n = read(ctl, buf, sizeof(buf) - 1);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strcmp(line, "eof") == 0) {
			if (stdin_keep >= 0)
				close(stdin_keep);
			stdin_keep = -1;
			continue;
		}
		if (master < 0)
			continue;
		char *end;
		unsigned long rows = strtoul(line, &end, 10), cols;
		if (end == line || *end != ' ')
			continue;
		line = end + 1;
		cols = strtoul(line, &end, 10);
		if (end != line && *end == '\0' && rows <= 0xffff && cols <= 0xffff) {
			struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
			ioctl(master, TIOCSWINSZ, &ws);
		}
	}
}

static int recv_fd(int sock)
{
	char byte, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* The pty master to a console socket, as runc hands it to containerd's shim
 * and dockerd (one byte of data, the descriptor in SCM_RIGHTS). */
static int send_fd(const char *path, int fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -1;
	if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int saved = errno;
		close(sock);
		errno = saved;
		return -1;
	}
	char name[] = "/dev/ptmx", cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n = sendmsg(sock, &msg, 0);
	int saved = errno;
	close(sock);
	errno = saved;
	return n < 0 ? -1 : 0;
}

static int read_plan(int fd, unsigned char **out, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	unsigned char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -1;
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n <= 0) {
			free(buf);
			errno = n == 0 ? EIO : errno;
			return -1;
		}
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	return 0;
}

static int write_map(pid_t pid, const char *name, const char *lines, char *path, size_t len)
{
	snprintf(path, len, "/proc/%d/%s", (int)pid, name);
	if (!lines) {
		errno = EINVAL;
		return -1;
	}
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = strlen(lines);
	int rc = write(fd, lines, n) == (ssize_t)n ? 0 : -1;  /* one write: the kernel's rule */
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static pid_t clone_container(const struct corral_plan *p, int cgfd, int *pidfd)
{
	uint64_t ns = p->namespaces & ~(uint64_t)CLONE_NEWCGROUP;
	struct clone_args ca = {
		.flags = ns | CLONE_PIDFD | (cgfd >= 0 ? CLONE_INTO_CGROUP : 0),
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)(cgfd >= 0 ? cgfd : 0),
	};
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0 && errno == ENOSYS) {
		/* Kernels before 5.3: clone(2) has CLONE_PIDFD since 5.2, no
		 * CLONE_INTO_CGROUP; the caller joins the cgroup by writing. */
		errno = ENOSYS;
		if (cgfd >= 0)
			return -1;
		pid = (pid_t)syscall(SYS_clone, ns | CLONE_PIDFD | SIGCHLD, NULL, pidfd, NULL, NULL);
	}
	return pid;
}

int main(int argc, char **argv)
{
	struct corral_plan plan;
	struct corral_error err;
	unsigned char *planbuf;
	size_t planlen;

	if (argc != 3) {
		fprintf(stderr, "usage: corral-monitor PLAN_FD REPORT_FD\n");
		return 125;
	}
	report_fd = atoi(argv[2]);
	int planfd = atoi(argv[1]);
	if (read_plan(planfd, &planbuf, &planlen) < 0)
		die(CORRAL_S_PLAN, errno, NULL, "reading the plan");
	close(planfd);
	if (plan_parse(planbuf, planlen, &plan, &err) < 0) {
		report(CORRAL_R_FAILED, 0, &err);
		return 125;
	}
	/* A writer on the stdin FIFO for as long as we live: the container reads
	 * no EOF when the daemon, its other writer, goes away; "eof" on the ctl
	 * FIFO closes it. Before the child exists, so it never sees a gap. */
	if (plan.stdin_fifo) {
		stdin_keep = open(plan.stdin_fifo, O_RDWR | O_CLOEXEC);
		if (stdin_keep < 0)
			die(CORRAL_S_MONITOR, errno, plan.stdin_fifo, "holding the stdin FIFO");
	}

	/* Signals are read from a signalfd; block them before the child exists
	 * (it unblocks everything before execve). */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGWINCH);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(*forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0)
		die(CORRAL_S_MONITOR, errno, NULL, "signalfd");
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	int logfd = -1, outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, cons[2] = { -1, -1 };
	if (plan.log_file) {
		logf.path = plan.log_file;
		logf.max_size = plan.log_max_size;
		logf.max_files = plan.log_max_files;
		log_open(0);
		logfd = logf.fd;
		if (logfd < 0)
			die(CORRAL_S_MONITOR, errno, plan.log_file, "opening the log");
		if (!plan.terminal && (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0))
			die(CORRAL_S_MONITOR, errno, NULL, "pipe2");
	}
	if (plan.terminal && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cons) < 0)
		die(CORRAL_S_TERMINAL, errno, NULL, "socketpair");
	int epipe[2];
	if (pipe2(epipe, O_CLOEXEC) < 0)
		die(CORRAL_S_MONITOR, errno, NULL, "pipe2");
	int cgfd = -1;
	if (plan.cgroup_dir) {
		cgfd = open(plan.cgroup_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cgfd < 0)
			die(CORRAL_S_CGROUP, errno, plan.cgroup_dir, NULL);
	}
	for (size_t i = 0; i < plan.nrecs; i++) {
		const struct plan_rec *r = &plan.recs[i];
		if (r->tag == CORRAL_T_NS_PATH && plan_u64(r, 0) == CLONE_NEWPID) {
			const char *path = plan_str(r, 8, 0);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0 || setns(fd, CLONE_NEWPID) < 0)
				die(CORRAL_S_SETNS, errno, path, NULL);
			close(fd);
		}
	}

	int usync[2] = { -1, -1 };
	if ((plan.namespaces & CLONE_NEWUSER) && pipe2(usync, O_CLOEXEC) < 0)
		die(CORRAL_S_MONITOR, errno, NULL, "pipe2");

	int pidfd = -1;
	pid_t pid = clone_container(&plan, cgfd, &pidfd);
	if (pid < 0)
		die(CORRAL_S_CLONE, errno, plan.cgroup_dir, NULL);
	if (pid == 0) {
		struct child_args ca = { .plan = &plan, .errfd = epipe[1], .consock = cons[1],
					 .userns_sync = usync[0] };
		close(epipe[0]);
		if (usync[1] >= 0)
			close(usync[1]);
		/* Logged: stdout/stderr to our pipes; stdin stays ours (the caller
		 * passes /dev/null, or a pipe for `run -i`). */
		if (outp[1] >= 0 && (dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0))
			_exit(125);
		container_main(&ca);
	}
	close(epipe[1]);
	/* The caller's extra descriptors are the container's (--preserve-fds):
	 * not ours to hold open. */
	for (uint32_t i = 0; i < plan.preserve_fds; i++)
		close(5 + (int)i);
	if (usync[0] >= 0) {
		/* Its maps, written from here (the parent namespace), then the go. */
		close(usync[0]);
		char path[64];
		const char *what = NULL;
		if (write_map(pid, "uid_map", plan.uid_map, path, sizeof(path)) < 0)
			what = "uid_map";
		else if (write_map(pid, "gid_map", plan.gid_map, path, sizeof(path)) < 0)
			what = "gid_map";
		if (what) {
			int saved = errno;
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			die(CORRAL_S_USERNS, saved, path, what);
		}
		if (write(usync[1], "1", 1) != 1) { /* it died: its report says so */ }
		close(usync[1]);
	}
	if (cons[1] >= 0)
		close(cons[1]);
	if (outp[1] >= 0) {
		close(outp[1]);
		close(errp[1]);
	}
	if (cgfd >= 0)
		close(cgfd);

	/* The child reports READY after setup; then EOF when execve succeeds.
	 * With a start FIFO the caller hears of READY; without one, of the exec. */
	int ready = 0, epipe_open = 1;
	for (;;) {
		ssize_t n = read(epipe[0], &err, sizeof(err));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == sizeof(err) && err.step == CORRAL_S_HOOKS && err.err == 0 && !ready) {
			/* Paused for its hooks: the caller hears of it, runs them
			 * and lets it go on; the real report follows. */
			struct corral_report r = { .kind = CORRAL_R_HOOKS, .pid = pid };
			if (report_fd >= 0 && write(report_fd, &r, sizeof(r)) != sizeof(r)) {
				/* The caller went away: it will not let the child go on. */
			}
			continue;
		}
		if (n == sizeof(err) && err.step == CORRAL_S_READY) {
			ready = 1;
			if (plan.start_fifo)
				break;
			continue;
		}
		if (n == sizeof(err) || !ready) {
			if (n != sizeof(err))
				set_error(&err, CORRAL_S_MONITOR, EPIPE, NULL, "the container died during setup");
			waitpid(pid, NULL, 0);
			report(CORRAL_R_FAILED, pid, &err);
			return 125;
		}
		epipe_open = 0;
		break;
	}
	int master = -1;
	if (plan.terminal) {
		master = recv_fd(cons[0]);
		close(cons[0]);
	}
	if (plan.handoff) {
		/* runc's model: the caller reaps the container, not us. Its pty
		 * goes to the console socket first, so that a failure is still
		 * this create's error; then we go, and the container is
		 * reparented to the caller's subreaper (containerd's shim). */
		if (plan.terminal && (!*plan.handoff || master < 0 ||
				      send_fd(plan.handoff, master) < 0)) {
			int saved = master < 0 ? EIO : (*plan.handoff ? errno : EINVAL);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			die(CORRAL_S_TERMINAL, saved, plan.handoff,
			    "sending the pty to the console socket (--console-socket)");
		}
		report(CORRAL_R_CREATED, pid, NULL);
		_exit(0);
	}
	/* Resizes come through the control FIFO, opened before the report so a
	 * resize sent right after it finds a reader; O_RDWR: never an EOF when a
	 * writer closes, so one open serves every resize. */
	int ctl = -1;
	if (plan.ctl_fifo)
		ctl = open(plan.ctl_fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	report(CORRAL_R_CREATED, pid, NULL);
	/* planbuf stays: the log, exit and OOM paths in plan point into it and
	 * are used until the container exits. */

	/* Foreground terminal: proxy our stdio to the pty. */
	int in_tty = plan.terminal && !plan.log_file && isatty(0);
	struct termios saved;
	if (in_tty && tcgetattr(0, &saved) == 0) {
		struct termios raw = saved;
		struct winsize ws;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
		if (ioctl(0, TIOCGWINSZ, &ws) == 0 && master >= 0)
			ioctl(master, TIOCSWINSZ, &ws);
	} else {
		in_tty = 0;
	}

	enum { P_SIG, P_EPIPE, P_CTL, P_OUT, P_ERR, P_MASTER, P_STDIN, P_N };
	struct pollfd fds[P_N];
	for (int i = 0; i < P_N; i++)
		fds[i] = (struct pollfd){ .fd = -1, .events = POLLIN };
	fds[P_SIG].fd = sigfd;
	fds[P_EPIPE].fd = epipe_open ? epipe[0] : -1;
	fds[P_CTL].fd = ctl;
	fds[P_OUT].fd = outp[0];
	fds[P_ERR].fd = errp[0];
	fds[P_MASTER].fd = master;
	fds[P_STDIN].fd = (plan.terminal && master >= 0) ? 0 : -1;
	int status = 0, exited = 0, failed = 0;
	char buf[64 * 1024];  /* a pipe's whole buffer in one read */
	const char *names[P_N] = { [P_OUT] = "stdout", [P_ERR] = "stderr", [P_MASTER] = "stdout" };

	while (!exited || fds[P_OUT].fd >= 0 || fds[P_ERR].fd >= 0 || fds[P_MASTER].fd >= 0) {
		/* After the exit, only drain what is already buffered. */
		int rc = poll(fds, P_N, exited ? 0 : -1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		if (fds[P_SIG].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					int st;
					pid_t w;
					while ((w = waitpid(-1, &st, WNOHANG)) > 0)
						if (w == pid) {
							status = st;
							exited = 1;
						}
				} else if (si.ssi_signo == SIGWINCH) {
					struct winsize ws;
					if (in_tty && ioctl(0, TIOCGWINSZ, &ws) == 0)
						ioctl(master, TIOCSWINSZ, &ws);
				} else if (!exited) {
					syscall(SYS_pidfd_send_signal, pidfd, si.ssi_signo, NULL, 0);
				}
			}
		}
		if (fds[P_CTL].revents & POLLIN)
			read_ctl(ctl, master);
		if (fds[P_EPIPE].revents) {
			/* EOF: execve succeeded; a record: it failed, and the exit
			 * status (126/127) says so. */
			ssize_t n = read(epipe[0], &err, sizeof(err));
			if (n == sizeof(err) && err.step != CORRAL_S_READY)
				failed = 1;  /* kept for exit.json: nobody else hears it */
			if (n != sizeof(err) || err.step != CORRAL_S_READY) {
				close(epipe[0]);
				fds[P_EPIPE].fd = -1;
			}
		}
		for (int i = P_OUT; i <= P_STDIN; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			ssize_t n = read(fds[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				if (i != P_STDIN)
					close(fds[i].fd);
				fds[i].fd = -1;
				continue;
			}
			if (i == P_STDIN)
				write_all(master, buf, (size_t)n);
			else if (logf.path)
				log_chunk(names[i], buf, (size_t)n);
			else
				write_all(1, buf, (size_t)n);
		}
		log_flush();  /* what this round read is in the log before the next poll */
	}
	if (in_tty)
		tcsetattr(0, TCSANOW, &saved);

	int code, sig = 0;
	if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		code = 128 + sig;
	} else {
		code = WEXITSTATUS(status);
	}
	int oom = plan.oom_file && read_oom_kills(plan.oom_file) > 0;
	if (plan.exit_file)
		record_exit(plan.exit_file, code, sig, oom, failed ? &err : NULL);
	return code;
}
