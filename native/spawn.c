/* corral_spawn: start the monitor the way posix_spawn does.
 *
 * fork() of a Python process copies its page tables (about 1 ms here); a
 * clone(CLONE_VM|CLONE_VFORK) child shares the parent's memory and runs on
 * its own small stack until execve, which costs a few tens of microseconds.
 * The parent is suspended until then, and learns of a failed execve through
 * the shared `err` field.  All signals are blocked around the clone so no
 * Python handler runs in the child; CLONE_PIDFD hands back a pidfd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spawn.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct spawn_ctx {
	const char *path;
	char *const *argv;
	char *const *envp;
	const int *fds;     /* fds[i] becomes descriptor i in the child (-1: closed) */
	int nfds;
	int setsid;
	int nsfd;           /* >= 0: setns(nsfd, nstypes) first (a pidfd: its namespaces) */
	int nstypes;
	volatile int err;
};

static int spawn_child(void *arg)
{
	struct spawn_ctx *c = arg;
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL);
	if (c->setsid && setsid() < 0)
		goto fail;
	/* Without CLONE_FS our fs_struct is our own, as setns(CLONE_NEWNS) needs;
	 * the path is then found in the namespace's root. */
	if (c->nsfd >= 0 && setns(c->nsfd, c->nstypes) < 0)
		goto fail;
	/* Move sources above the targets first so dup2 never clobbers one. */
	int moved[64];
	for (int i = 0; i < c->nfds; i++) {
		moved[i] = -1;
		if (c->fds[i] >= 0 && (moved[i] = fcntl(c->fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
			goto fail;
	}
	for (int i = 0; i < c->nfds; i++) {
		if (moved[i] < 0)
			close(i);
		else if (dup2(moved[i], i) < 0)
			goto fail;
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(c->path, c->argv, c->envp);
fail:
	c->err = errno;
	_exit(127);
}

int corral_spawn(const char *path, char *const argv[], char *const envp[],
		 const int *fds, int nfds, int setsid, int nsfd, int nstypes, int *pidfd)
{
	if (nfds > 64) {
		errno = EINVAL;
		return -1;
	}
	size_t stack_size = 64 * 1024;
	void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	struct spawn_ctx c = { path, argv, envp, fds, nfds, setsid, nsfd, nstypes, 0 };
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	*pidfd = -1;
	pid_t pid = clone(spawn_child, (char *)stack + stack_size,
			  CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &c, pidfd);
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	munmap(stack, stack_size);
	if (pid < 0) {
		errno = saved;
		return -1;
	}
	if (c.err) {
		/* execve failed: reap the child, which exited at once. */
		siginfo_t si;
		waitid(P_PIDFD, (id_t)*pidfd, &si, WEXITED);
		close(*pidfd);
		*pidfd = -1;
		errno = c.err;
		return -1;
	}
	/* The pidfd comes without close-on-exec; the caller must not leak it. */
	fcntl(*pidfd, F_SETFD, FD_CLOEXEC);
	return pid;
}
