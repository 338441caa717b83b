/* A parsed view of the plan records (pointers into the plan buffer). */
#ifndef CORRAL_PLAN_H
#define CORRAL_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include "corral.h"

struct plan_rec {
	uint32_t tag;
	uint32_t len;
	const unsigned char *data;
};

struct corral_plan {
	struct plan_rec *recs;    /* all records, in order */
	size_t nrecs;
	const char *rootfs;
	const char *hostname;
	const char *cwd;
	const char *start_fifo;
	const char *hooks_fifo;
	const char *uid_map, *gid_map;
	const char *exit_file;
	const char *log_file;
	const char *cgroup_dir;
	const char *oom_file;
	const char *ctl_fifo;
	const char *stdin_fifo;
	const char *handoff;      /* non-NULL: hand the container over (CORRAL_T_HANDOFF) */
	const struct plan_rec *overlay;
	uint64_t log_max_size;
	uint32_t log_max_files;
	uint32_t console_rows, console_cols;  /* 0: unset */
	const struct plan_rec *seccomp;       /* NULL: none */
	int join;
	uint64_t namespaces;
	uint64_t root_propagation;
	int no_pivot;
	uint32_t preserve_fds;     /* more descriptors, at 5.. in the monitor */
	int rootfs_ro, terminal, no_new_privs, has_user, has_caps, has_umask, has_oom_adj;
	uint32_t uid, gid, umask;
	int32_t oom_score_adj;
	const uint32_t *groups;
	size_t ngroups;
	uint64_t caps[5];
	char **argv, **envp;      /* NULL-terminated */
	size_t argc, envc;
};

/* Parse buf into plan; on failure fills err and returns -1. */
void plan_free(struct corral_plan *plan);
int plan_parse(unsigned char *buf, size_t len, struct corral_plan *plan, struct corral_error *err);

/* The i-th NUL-terminated string of a record's payload after skip bytes. */
const char *plan_str(const struct plan_rec *r, size_t skip, int index);
uint64_t plan_u64(const struct plan_rec *r, size_t off);
uint32_t plan_u32(const struct plan_rec *r, size_t off);

void set_error(struct corral_error *e, int step, int err, const char *path, const char *detail);

#endif
