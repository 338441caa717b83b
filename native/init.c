/* corral-init: the container's PID 1 for `run --init`, as Docker's docker-init
 * (tini) is. It starts the command, passes every signal it receives on to it,
 * reaps every process that ends (orphans are re-parented to PID 1, and a
 * program not written to be PID 1 leaves them as zombies), and exits with the
 * command's status (128 + the signal that ended it).
 *
 * Static and tiny: it is bind-mounted into the container read-only.
 *
 * `corral-init --hold` runs no command: it forks a child that only waits for
 * SIGTERM or SIGINT, prints the child's pid and exits (so PID 1, not the
 * caller, reaps the child). The daemon's systemd cgroup manager keeps one in
 * the containers' scope, as the process that keeps the scope alive while no
 * container runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int hold(void)
{
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "corral-init: fork: %s\n", strerror(errno));
		return 125;
	}
	if (child > 0) {
		printf("%d\n", (int)child);
		return 0;
	}
	/* The caller reads the pid until EOF: the holder keeps none of its pipes. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	setsid();
	sigset_t stop;
	sigfillset(&stop);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	while (sigwaitinfo(&stop, NULL) < 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--hold") == 0)
		return hold();
	if (argc < 2) {
		fprintf(stderr, "usage: %s COMMAND [ARG...]\n", argv[0]);
		return 125;
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "corral-init: fork: %s\n", strerror(errno));
		return 125;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[1], argv + 1);
		fprintf(stderr, "corral-init: %s: %s\n", argv[1], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != child)
				continue;  /* an orphan: reaped, nothing more */
			/* Reap what is left without waiting, then go with the command. */
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
			if (WIFSIGNALED(status))
				return 128 + WTERMSIG(status);
			return WEXITSTATUS(status);
		}
	}
}
