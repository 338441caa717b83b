#ifndef CORRAL_CONTAINER_H
#define CORRAL_CONTAINER_H
#include "plan.h"

struct child_args {
	const struct corral_plan *plan;
	int errfd;     /* write end of the error pipe (close-on-exec)          */
	int consock;   /* socket to send the pty master through, or -1         */
	int userns_sync; /* a user namespace: a byte here once its maps are written */
};

/* Runs in the cloned child; execs the container's process or exits. */
_Noreturn void container_main(const struct child_args *args);
#endif
