/* The kernel's own part of a container start, as the baseline for the
 * runtime benchmark: clone into new mount/uts/ipc/net/pid/cgroup namespaces,
 * execve a static /bin/true, wait for it.  No mounts, no cgroups, no runtime.
 * With "plain", no new namespaces: what any process's start costs.
 *
 *   kernel_part PATH_TO_TRUE N [plain]   -> prints N wall times in microseconds */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char stack[64 * 1024];
static char *prog;

static int child(void *arg)
{
	(void)arg;
	char *argv[] = { prog, NULL };
	execv(prog, argv);
	_exit(127);
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4)
		return 2;
	prog = argv[1];
	int n = atoi(argv[2]);
	int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID |
		    CLONE_NEWCGROUP | SIGCHLD;
	if (argc == 4)
		flags = SIGCHLD;
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		pid_t pid = clone(child, stack + sizeof(stack), flags, NULL);
		if (pid < 0) {
			perror("clone");
			return 1;
		}
		int st;
		waitpid(pid, &st, 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("%ld\n", (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000);
	}
	return 0;
}
