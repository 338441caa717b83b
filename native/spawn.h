#ifndef CORRAL_SPAWN_H
#define CORRAL_SPAWN_H
/* Returns the child's pid and sets *pidfd, or -1 with errno set. */
int corral_spawn(const char *path, char *const argv[], char *const envp[],
		 const int *fds, int nfds, int setsid, int nsfd, int nstypes, int *pidfd);
#endif
