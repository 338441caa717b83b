/* corral-runc's front: the verbs containerd's shim runs for every container
 * (start, delete, delete --force, kill), done here without starting Python,
 * when they take the plain path; everything else, and every case this file
 * does not recognise (hooks, a container not yet stopped, an error to
 * report), is exec'd to the Python corral-runc, which decides and reports as
 * before. So this file never fails a call: it either does exactly what the
 * Python verb would do on that path, or hands the call over untouched.
 *
 * Why: the shim runs the runtime four times per container; a Python start is
 * ~8 ms here against runc's ~2.4 ms (docs/benchmarks.md, issue #20).
 *
 * The state it reads is the runtime's (supervisor/runtime/state.py):
 * ROOT/ID/state.json (compact JSON written by the runtime), exec.fifo while
 * the container waits for start, hooks.json when it has hooks.
 *
 * CORRAL_RUNC_NATIVE_ONLY=1 makes a hand-over an error (exit 125): the tests
 * and a trace use it to see which calls this file served. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CORRAL_PYTHON
#error "CORRAL_PYTHON: the interpreter that runs the Python corral-runc"
#endif

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define DEFAULT_ROOT "/run/corral-runc"

static char **g_argv;
static int join(char *out, size_t size, const char *a, const char *b);

/* The Python corral-runc, with our own arguments, untouched. */
static void hand_over(void) __attribute__((noreturn));
static void hand_over(void)
{
	if (getenv("CORRAL_RUNC_NATIVE_ONLY")) {  /* to see which path a call took */
		fprintf(stderr, "corral-runc: the native front would hand over to Python\n");
		_exit(125);
	}
	int n = 0;
	while (g_argv[n])
		n++;
	char **args = calloc((size_t)n + 3, sizeof(char *));
	if (!args)
		_exit(1);
	/* sys.argv is then ["-c", our arguments...]: main() reads sys.argv[1:]. */
	args[0] = CORRAL_PYTHON;
	args[1] = "-c";
	args[2] = "import sys; from supervisor.runtime.runc_cli import main; sys.exit(main())";
	for (int i = 1; i < n; i++)
		args[2 + i] = g_argv[i];
	execv(CORRAL_PYTHON, args);
	fprintf(stderr, "corral-runc: exec %s: %s\n", CORRAL_PYTHON, strerror(errno));
	_exit(1);
}

/* ---- the record: a walk of state.json's top-level object ---------------- */

struct record {
	long long pid, pid_start;
	int handoff;
	char version[8];
	char path[4096];
	char mount_root[4096];  /* "" for null */
	int have_pid, have_start, have_cgroup;
};

struct json {
	const char *p, *end;
};

static void ws(struct json *j)
{
	while (j->p < j->end && isspace((unsigned char)*j->p))
		j->p++;
}

/* A string without escapes into out (an escape: not our plain path). */
static int str(struct json *j, char *out, size_t size)
{
	ws(j);
	if (j->p >= j->end || *j->p != '"')
		return -1;
	const char *s = ++j->p;
	while (j->p < j->end && *j->p != '"') {
		if (*j->p == '\\')
			return -1;
		j->p++;
	}
	if (j->p >= j->end)
		return -1;
	size_t n = (size_t)(j->p - s);
	j->p++;
	if (out) {
		if (n >= size)
			return -1;
		memcpy(out, s, n);
		out[n] = '\0';
	}
	return 0;
}

/* Skip any value (strings with escapes included). */
static int skip(struct json *j)
{
	ws(j);
	if (j->p >= j->end)
		return -1;
	char c = *j->p;
	if (c == '"') {
		j->p++;
		while (j->p < j->end && *j->p != '"')
			j->p += (*j->p == '\\') ? 2 : 1;
		if (j->p >= j->end)
			return -1;
		j->p++;
		return 0;
	}
	if (c == '{' || c == '[') {
		int depth = 0;
		while (j->p < j->end) {
			c = *j->p;
			if (c == '"') {
				if (skip(j) < 0)
					return -1;
				continue;
			}
			if (c == '{' || c == '[')
				depth++;
			else if (c == '}' || c == ']')
				if (--depth == 0) {
					j->p++;
					return 0;
				}
			j->p++;
		}
		return -1;
	}
	while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']')
		j->p++;
	return 0;
}

static int number(struct json *j, long long *out)
{
	ws(j);
	char *e;
	errno = 0;
	long long v = strtoll(j->p, &e, 10);
	if (e == j->p || errno)
		return -1;
	j->p = e;
	*out = v;
	return 0;
}

/* Walk an object, calling field() for each key; returns -1 on bad JSON. */
static int object(struct json *j, int (*field)(struct json *, const char *, void *), void *ctx)
{
	ws(j);
	if (j->p >= j->end || *j->p != '{')
		return -1;
	j->p++;
	for (;;) {
		ws(j);
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		char key[64];
		if (str(j, key, sizeof key) < 0)
			return -1;
		ws(j);
		if (j->p >= j->end || *j->p != ':')
			return -1;
		j->p++;
		if (field(j, key, ctx) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		return -1;
	}
}

static int cgroup_field(struct json *j, const char *key, void *ctx)
{
	struct record *r = ctx;
	if (strcmp(key, "version") == 0)
		return str(j, r->version, sizeof r->version);
	if (strcmp(key, "path") == 0)
		return str(j, r->path, sizeof r->path);
	if (strcmp(key, "mount_root") == 0) {
		ws(j);
		if (j->end - j->p >= 4 && strncmp(j->p, "null", 4) == 0) {
			j->p += 4;
			r->mount_root[0] = '\0';
			return 0;
		}
		return str(j, r->mount_root, sizeof r->mount_root);
	}
	return skip(j);
}

static int record_field(struct json *j, const char *key, void *ctx)
{
	struct record *r = ctx;
	if (strcmp(key, "pid") == 0)
		return r->have_pid = 1, number(j, &r->pid);
	if (strcmp(key, "pid_start") == 0)
		return r->have_start = 1, number(j, &r->pid_start);
	if (strcmp(key, "handoff") == 0) {
		ws(j);
		r->handoff = j->end - j->p >= 4 && strncmp(j->p, "true", 4) == 0;
		return skip(j);
	}
	if (strcmp(key, "cgroup") == 0)
		return r->have_cgroup = 1, object(j, cgroup_field, r);
	return skip(j);
}

static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0 || (size_t)n == size - 1)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static int read_record(const char *dir, struct record *r)
{
	static char buf[1 << 16];
	char path[4300];
	if (join(path, sizeof path, dir, "/state.json") < 0)
		return -1;
	int n = read_file(path, buf, sizeof buf);
	if (n < 0)
		return -1;
	memset(r, 0, sizeof *r);
	struct json j = {buf, buf + n};
	if (object(&j, record_field, r) < 0)
		return -1;
	return r->have_pid && r->have_start && r->have_cgroup && r->path[0] == '/' ? 0 : -1;
}

/* ---- the process and its cgroups ----------------------------------------- */

/* 1: `pid` is still the process that started at `start` and not a zombie;
 * 0: gone (or a zombie: stopped); -1: cannot tell. */
static int alive(long long pid, long long start)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%lld/stat", pid);
	int n = read_file(path, buf, sizeof buf);
	if (n < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ')
		return -1;
	char state = rp[2];
	/* Field 22 (starttime) is the 20th after the state. */
	char *s = rp + 2;
	for (int i = 0; i < 19 && s; i++) {
		s = strchr(s, ' ');
		if (s)
			s++;
	}
	if (!s)
		return -1;
	if (strtoll(s, NULL, 10) != start)
		return 0;
	return state != 'Z';
}

/* The controllers the runtime's v1 cgroups join (cgroups/v1.py CONTROLLERS). */
static const char *const V1[] = {"memory", "cpu", "cpuacct", "pids", "freezer",
				 "devices", "blkio", "cpuset", NULL};

/* The record's cgroup directories, as the runtime opens them: v2 one under the
 * cgroup2 mount (or the recorded mount root), v1 one per hierarchy that has
 * one of V1. Returns the count, -1 if not our plain case. */
static int cgroup_dirs(const struct record *r, char dirs[][4200], int max)
{
	int n = 0;
	if (strcmp(r->version, "v2") == 0 && r->mount_root[0]) {
		return join(dirs[0], 4200, r->mount_root, r->path) < 0 ? -1 : 1;
	}
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[4096];
	int v2 = strcmp(r->version, "v2") == 0;
	while (fgets(line, sizeof line, f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
		char root[1024], mnt[1024];
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2)
			continue;
		char *dash = strstr(line, " - ");
		if (!dash)
			continue;
		char fstype[64], source[256], opts[1024];
		if (sscanf(dash + 3, "%63s %255s %1023s", fstype, source, opts) != 3)
			continue;
		if (v2 && strcmp(fstype, "cgroup2") == 0) {
			if (strcmp(root, "/") != 0)
				break;
			fclose(f);
			return join(dirs[0], 4200, mnt, r->path) < 0 ? -1 : 1;
		}
		if (v2 || strcmp(fstype, "cgroup") != 0)
			continue;
		int ours = 0;
		char *save, *tok;
		for (tok = strtok_r(opts, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			for (int i = 0; V1[i]; i++)
				if (strcmp(tok, V1[i]) == 0)
					ours = 1;
		if (!ours)
			continue;
		if (strcmp(root, "/") != 0 || n >= max) {
			fclose(f);
			return -1;
		}
		if (join(dirs[n++], 4200, mnt, r->path) < 0) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return v2 ? -1 : n;
}

/* Does any of the directories hold a process? 1 yes, 0 no, -1 cannot tell. */
static int populated(char dirs[][4200], int n)
{
	for (int i = 0; i < n; i++) {
		char path[4300], buf[64];
		if (join(path, sizeof path, dirs[i], "/cgroup.procs") < 0)
			return -1;
		int got = read_file(path, buf, sizeof buf);
		if (got < 0) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		if (got > 0)
			return 1;
	}
	return 0;
}

static int frozen(char dirs[][4200], int n, int v2)
{
	for (int i = 0; i < n; i++) {
		char path[4300], buf[512];
		if (v2) {
			if (join(path, sizeof path, dirs[i], "/cgroup.events") < 0)
				return 1;
			if (read_file(path, buf, sizeof buf) >= 0 && strstr(buf, "frozen 1"))
				return 1;
		} else {
			if (join(path, sizeof path, dirs[i], "/freezer.state") < 0)
				return 1;
			if (read_file(path, buf, sizeof buf) >= 0 && strncmp(buf, "THAWED", 6) != 0)
				return 1;
		}
	}
	return 0;
}

/* out = a + b, or -1 when it would not fit (never a truncated path). */
static int join(char *out, size_t size, const char *a, const char *b)
{
	int n = snprintf(out, size, "%s%s", a, b);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int exists(const char *dir, const char *name)
{
	char path[4300], slash[256];
	snprintf(slash, sizeof slash, "/%s", name);
	if (join(path, sizeof path, dir, slash) < 0)
		hand_over();
	return access(path, F_OK) == 0;
}

/* ---- the verbs -------------------------------------------------------------- */

static void start(const char *dir)
{
	if (exists(dir, "hooks.json"))
		hand_over();
	char fifo[4300];
	if (join(fifo, sizeof fifo, dir, "/exec.fifo") < 0)
		hand_over();
	int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		hand_over();  /* not waiting (any more): Python says which */
	if (write(fd, "", 1) != 1) {
		close(fd);
		hand_over();
	}
	close(fd);
	unlink(fifo);
	exit(0);
}

/* A stopped, handed-over container without hooks: its cgroups and state go. */
static void delete(const char *dir)
{
	struct record r;
	if (exists(dir, "hooks.json") || exists(dir, "exec.fifo") || read_record(dir, &r) < 0 ||
	    !r.handoff || alive(r.pid, r.pid_start) != 0)
		hand_over();
	char dirs[16][4200];
	int n = cgroup_dirs(&r, dirs, 16);
	if (n < 0 || populated(dirs, n) != 0)
		hand_over();
	for (int i = 0; i < n; i++)
		if (rmdir(dirs[i]) < 0 && errno != ENOENT)
			hand_over();
	DIR *d = opendir(dir);
	if (!d)
		hand_over();
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		hand_over();
	exit(0);
}

static const struct {
	const char *name;
	int sig;
} SIGNALS[] = {
	{"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
	{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"STOP", SIGSTOP},
	{"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {NULL, 0},
};

static int parse_signal(const char *s)
{
	if (isdigit((unsigned char)s[0])) {
		char *e;
		long v = strtol(s, &e, 10);
		return *e || v <= 0 || v > 64 ? -1 : (int)v;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (int i = 0; SIGNALS[i].name; i++)
		if (strcasecmp(s, SIGNALS[i].name) == 0)
			return SIGNALS[i].sig;
	return -1;
}

/* A signal to a running (not paused, not created) container's process, through
 * a pidfd opened before its identity is checked (no pid-reuse race). */
static void kill_verb(const char *dir, const char *signame)
{
	struct record r;
	int sig = parse_signal(signame);
	if (sig < 0 || exists(dir, "exec.fifo") || read_record(dir, &r) < 0 || !r.handoff)
		hand_over();
	char dirs[16][4200];
	int n = cgroup_dirs(&r, dirs, 16);
	if (n < 0 || frozen(dirs, n, strcmp(r.version, "v2") == 0))
		hand_over();
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)r.pid, 0);
	if (pidfd < 0)
		hand_over();
	if (alive(r.pid, r.pid_start) != 1 ||
	    syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
		close(pidfd);
		hand_over();
	}
	close(pidfd);
	exit(0);
}

int main(int argc, char **argv)
{
	g_argv = argv;
	const char *root = DEFAULT_ROOT;
	int i = 1;
	/* runc's global flags before the command; anything else is Python's. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "--root") == 0 || strcmp(a, "--log") == 0 ||
		     strcmp(a, "--log-format") == 0 || strcmp(a, "--criu") == 0) && i + 1 < argc) {
			if (strcmp(a, "--root") == 0)
				root = argv[i + 1];
			i++;
		} else if (strncmp(a, "--root=", 7) == 0) {
			root = a + 7;
		} else if (strncmp(a, "--log=", 6) == 0 || strncmp(a, "--log-format=", 13) == 0 ||
			   strncmp(a, "--criu=", 7) == 0 || strcmp(a, "--systemd-cgroup") == 0) {
			continue;  /* the record names the container's cgroup, however made */
		} else {
			hand_over();  /* --debug, --systemd-cgroup, --help, --version... */
		}
	}
	if (i >= argc)
		hand_over();
	const char *cmd = argv[i++];
	int force = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(cmd, "delete") == 0 &&
		    (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0))
			force = 1;
		else
			hand_over();
	}
	if (i >= argc)
		hand_over();
	const char *id = argv[i++];
	/* An id names a directory under the root: nothing that leaves it. */
	if (!id[0] || strchr(id, '/') || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		hand_over();
	char dir[4200], rel[4096];
	if (strlen(id) >= sizeof rel - 1)
		hand_over();
	snprintf(rel, sizeof rel, "/%s", id);
	if (join(dir, sizeof dir, root, rel) < 0)
		hand_over();
	if (strcmp(cmd, "start") == 0 && i == argc)
		start(dir);
	if (strcmp(cmd, "delete") == 0 && i == argc) {
		if (force && access(dir, F_OK) < 0 && errno == ENOENT)
			return 0;  /* runc's delete --force of a container that is gone */
		delete(dir);
	}
	if (strcmp(cmd, "kill") == 0 && argc - i <= 1)
		kill_verb(dir, i < argc ? argv[i] : "TERM");
	hand_over();
}
