/* Plan parsing: bounds-checked, so a malformed plan is a clear error and
 * never a read past the buffer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plan.h"

static const char *const step_names[CORRAL_S__COUNT] = {
	[CORRAL_S_NONE] = "none",
	[CORRAL_S_PLAN] = "reading the plan",
	[CORRAL_S_CLONE] = "clone3",
	[CORRAL_S_CGROUP] = "joining the cgroup",
	[CORRAL_S_SETNS] = "setns",
	[CORRAL_S_UNSHARE_CGROUP] = "unshare(CLONE_NEWCGROUP)",
	[CORRAL_S_HOSTNAME] = "sethostname",
	[CORRAL_S_PROPAGATION] = "making mount propagation private",
	[CORRAL_S_ROOTFS] = "binding the root filesystem",
	[CORRAL_S_RESOLVE] = "resolving a path inside the root",
	[CORRAL_S_MOUNT] = "mount",
	[CORRAL_S_MKNOD] = "mknod",
	[CORRAL_S_SYMLINK] = "symlink",
	[CORRAL_S_PIVOT_ROOT] = "pivot_root",
	[CORRAL_S_MASK] = "masking a path",
	[CORRAL_S_READONLY] = "making a path read-only",
	[CORRAL_S_SYSCTL] = "writing a sysctl",
	[CORRAL_S_TERMINAL] = "setting up the terminal",
	[CORRAL_S_RLIMIT] = "setrlimit",
	[CORRAL_S_OOM_SCORE_ADJ] = "writing oom_score_adj",
	[CORRAL_S_CWD] = "changing to the working directory",
	[CORRAL_S_USER] = "setting uid, gid and groups",
	[CORRAL_S_CAPS] = "setting capabilities",
	[CORRAL_S_NO_NEW_PRIVS] = "prctl(PR_SET_NO_NEW_PRIVS)",
	[CORRAL_S_START_WAIT] = "waiting for start",
	[CORRAL_S_EXEC_LOOKUP] = "looking up the executable",
	[CORRAL_S_EXEC] = "execve",
	[CORRAL_S_MONITOR] = "the monitor",
	[CORRAL_S_SPAWN] = "spawning the monitor",
	[CORRAL_S_READY] = "ready",
	[CORRAL_S_LOOPBACK] = "bringing up the loopback interface",
	[CORRAL_S_SECCOMP] = "installing the seccomp filter",
	[CORRAL_S_USERNS] = "setting up the user namespace",
	[CORRAL_S_HOOKS] = "waiting for the hooks",
};

const char *corral_step_name(int step)
{
	if (step < 0 || step >= CORRAL_S__COUNT || !step_names[step])
		return "unknown step";
	return step_names[step];
}

void set_error(struct corral_error *e, int step, int err, const char *path, const char *detail)
{
	memset(e, 0, sizeof(*e));
	e->step = step;
	e->err = err;
	if (path)
		snprintf(e->path, sizeof(e->path), "%s", path);
	if (detail)
		snprintf(e->detail, sizeof(e->detail), "%s", detail);
}

uint64_t plan_u64(const struct plan_rec *r, size_t off)
{
	uint64_t v;
	memcpy(&v, r->data + off, sizeof(v));
	return v;
}

uint32_t plan_u32(const struct plan_rec *r, size_t off)
{
	uint32_t v;
	memcpy(&v, r->data + off, sizeof(v));
	return v;
}

const char *plan_str(const struct plan_rec *r, size_t skip, int index)
{
	const char *p = (const char *)r->data + skip;
	const char *end = (const char *)r->data + r->len;
	for (int i = 0; i < index; i++) {
		p = memchr(p, '\0', end - p);
		if (!p)
			return NULL;
		p++;
	}
	return p < end ? p : NULL;
}

/* Fixed-size prefix each tag needs, and how many strings follow it. */
static int tag_shape(uint32_t tag, size_t *fixed, int *nstr)
{
	*fixed = 0;
	*nstr = 0;
	switch (tag) {
	case CORRAL_T_ROOTFS_RO: case CORRAL_T_NO_NEW_PRIVS: case CORRAL_T_TERMINAL:
	case CORRAL_T_NO_PIVOT:
	case CORRAL_T_JOIN:
		return 0;
	case CORRAL_T_OVERLAY:
		*nstr = 3;
		return 0;
	case CORRAL_T_LOG_LIMITS:
		*fixed = 12;
		return 0;
	case CORRAL_T_CONSOLE_SIZE:
		*fixed = 8;
		return 0;
	case CORRAL_T_SECCOMP:  /* whole 8-byte instructions, checked below */
		return 0;
	case CORRAL_T_ROOTFS: case CORRAL_T_HOSTNAME: case CORRAL_T_MASK:
	case CORRAL_T_READONLY: case CORRAL_T_CWD: case CORRAL_T_ARG:
	case CORRAL_T_ENV: case CORRAL_T_CGROUP_JOIN: case CORRAL_T_CGROUP_DIR:
	case CORRAL_T_OOM_FILE: case CORRAL_T_START_FIFO: case CORRAL_T_EXIT_FILE:
	case CORRAL_T_LOG_FILE: case CORRAL_T_TMPFS_RO: case CORRAL_T_CTL_FIFO:
	case CORRAL_T_STDIN_FIFO: case CORRAL_T_HOOKS_FIFO: case CORRAL_T_UID_MAP:
	case CORRAL_T_GID_MAP: case CORRAL_T_HANDOFF:
		*nstr = 1;
		return 0;
	case CORRAL_T_ROOT_PROPAGATION: case CORRAL_T_NAMESPACES:
		*fixed = 8;
		return 0;
	case CORRAL_T_NS_PATH:
		*fixed = 8;
		*nstr = 1;
		return 0;
	case CORRAL_T_MOUNT:
		*fixed = 20;
		*nstr = 4;
		return 0;
	case CORRAL_T_DEVICE:
		*fixed = 20;
		*nstr = 1;
		return 0;
	case CORRAL_T_SYMLINK: case CORRAL_T_SYSCTL:
		*nstr = 2;
		return 0;
	case CORRAL_T_RLIMIT:
		*fixed = 24;
		return 0;
	case CORRAL_T_USER:
		*fixed = 8;
		return 0;
	case CORRAL_T_GROUPS:
		return 0;
	case CORRAL_T_CAPS:
		*fixed = 40;
		return 0;
	case CORRAL_T_UMASK: case CORRAL_T_OOM_SCORE_ADJ: case CORRAL_T_PRESERVE_FDS:
		*fixed = 4;
		return 0;
	}
	return -1;
}

static int rec_valid(const struct plan_rec *r, size_t fixed, int nstr)
{
	if (r->len < fixed)
		return 0;
	if (r->tag == CORRAL_T_GROUPS)
		return r->len % 4 == 0;
	if (r->tag == CORRAL_T_SECCOMP)  /* 8-byte instructions, at most BPF_MAXINSNS */
		return r->len > 0 && r->len % 8 == 0 && r->len / 8 <= 4096;
	const char *p = (const char *)r->data + fixed;
	const char *end = (const char *)r->data + r->len;
	for (int i = 0; i < nstr; i++) {
		const char *z = memchr(p, '\0', end - p);
		if (!z)
			return 0;
		p = z + 1;
	}
	return 1;
}

void plan_free(struct corral_plan *plan)
{
	free(plan->recs);
	free(plan->argv);
	free(plan->envp);
	memset(plan, 0, sizeof(*plan));
}

int plan_parse(unsigned char *buf, size_t len, struct corral_plan *plan, struct corral_error *err)
{
	char detail[64];
	size_t off = 0, n = 0, cap = 64;

	memset(plan, 0, sizeof(*plan));
	plan->recs = malloc(cap * sizeof(*plan->recs));
	if (!plan->recs)
		goto nomem;
	while (off < len) {
		struct plan_rec r;
		size_t fixed;
		int nstr;
		if (len - off < 8) {
			set_error(err, CORRAL_S_PLAN, EINVAL, NULL, "truncated record header");
			return -1;
		}
		memcpy(&r.tag, buf + off, 4);
		memcpy(&r.len, buf + off + 4, 4);
		off += 8;
		if (r.len > len - off) {
			set_error(err, CORRAL_S_PLAN, EINVAL, NULL, "record runs past the plan");
			return -1;
		}
		r.data = buf + off;
		off += (r.len + 7) & ~(size_t)7;  /* records are 8-byte aligned */
		if (tag_shape(r.tag, &fixed, &nstr) < 0 || !rec_valid(&r, fixed, nstr)) {
			snprintf(detail, sizeof(detail), "malformed record with tag %u", r.tag);
			set_error(err, CORRAL_S_PLAN, EINVAL, NULL, detail);
			return -1;
		}
		if (n == cap) {
			struct plan_rec *bigger = realloc(plan->recs, 2 * cap * sizeof(*bigger));
			if (!bigger)
				goto nomem;
			plan->recs = bigger;
			cap *= 2;
		}
		plan->recs[n++] = r;
		switch (r.tag) {
		case CORRAL_T_ROOTFS: plan->rootfs = (const char *)r.data; break;
		case CORRAL_T_ROOTFS_RO: plan->rootfs_ro = 1; break;
		case CORRAL_T_NO_PIVOT: plan->no_pivot = 1; break;
		case CORRAL_T_PRESERVE_FDS: plan->preserve_fds = plan_u32(&r, 0); break;
		case CORRAL_T_ROOT_PROPAGATION: plan->root_propagation = plan_u64(&r, 0); break;
		case CORRAL_T_NAMESPACES: plan->namespaces = plan_u64(&r, 0); break;
		case CORRAL_T_HOSTNAME: plan->hostname = (const char *)r.data; break;
		case CORRAL_T_CWD: plan->cwd = (const char *)r.data; break;
		case CORRAL_T_START_FIFO: plan->start_fifo = (const char *)r.data; break;
		case CORRAL_T_EXIT_FILE: plan->exit_file = (const char *)r.data; break;
		case CORRAL_T_LOG_FILE: plan->log_file = (const char *)r.data; break;
		case CORRAL_T_CGROUP_DIR: plan->cgroup_dir = (const char *)r.data; break;
		case CORRAL_T_OOM_FILE: plan->oom_file = (const char *)r.data; break;
		case CORRAL_T_CTL_FIFO: plan->ctl_fifo = (const char *)r.data; break;
		case CORRAL_T_STDIN_FIFO: plan->stdin_fifo = (const char *)r.data; break;
		case CORRAL_T_HOOKS_FIFO: plan->hooks_fifo = (const char *)r.data; break;
		case CORRAL_T_HANDOFF: plan->handoff = (const char *)r.data; break;
		case CORRAL_T_UID_MAP: plan->uid_map = (const char *)r.data; break;
		case CORRAL_T_GID_MAP: plan->gid_map = (const char *)r.data; break;
		case CORRAL_T_TERMINAL: plan->terminal = 1; break;
		case CORRAL_T_JOIN: plan->join = 1; break;
		case CORRAL_T_OVERLAY: plan->overlay = &plan->recs[n - 1]; break;
		case CORRAL_T_CONSOLE_SIZE:
			plan->console_rows = plan_u32(&r, 0);
			plan->console_cols = plan_u32(&r, 4);
			break;
		case CORRAL_T_LOG_LIMITS:
			plan->log_max_size = plan_u64(&r, 0);
			plan->log_max_files = plan_u32(&r, 8);
			break;
		case CORRAL_T_NO_NEW_PRIVS: plan->no_new_privs = 1; break;
		case CORRAL_T_USER:
			plan->has_user = 1;
			plan->uid = plan_u32(&r, 0);
			plan->gid = plan_u32(&r, 4);
			break;
		case CORRAL_T_GROUPS:
			plan->groups = (const uint32_t *)r.data;  /* 8-byte aligned */
			plan->ngroups = r.len / 4;
			break;
		case CORRAL_T_CAPS:
			plan->has_caps = 1;
			for (int i = 0; i < 5; i++)
				plan->caps[i] = plan_u64(&r, 8 * i);
			break;
		case CORRAL_T_UMASK: plan->has_umask = 1; plan->umask = plan_u32(&r, 0); break;
		case CORRAL_T_OOM_SCORE_ADJ:
			plan->has_oom_adj = 1;
			plan->oom_score_adj = (int32_t)plan_u32(&r, 0);
			break;
		case CORRAL_T_ARG:
		case CORRAL_T_ENV: {
			int is_arg = r.tag == CORRAL_T_ARG;
			char ***vec = is_arg ? &plan->argv : &plan->envp;
			size_t *cnt = is_arg ? &plan->argc : &plan->envc;
			char **bigger = realloc(*vec, (*cnt + 2) * sizeof(char *));
			if (!bigger)
				goto nomem;
			*vec = bigger;
			bigger[(*cnt)++] = (char *)r.data;
			bigger[*cnt] = NULL;
			break;
		}
		}
	}
	plan->nrecs = n;
	if (!plan->envp) {
		plan->envp = calloc(1, sizeof(char *));
		if (!plan->envp)
			goto nomem;
	}
	/* recs may have moved while growing: point at their final places. */
	for (size_t i = 0; i < n; i++) {
		if (plan->recs[i].tag == CORRAL_T_OVERLAY)
			plan->overlay = &plan->recs[i];
		if (plan->recs[i].tag == CORRAL_T_SECCOMP)
			plan->seccomp = &plan->recs[i];
	}
	if ((!plan->rootfs && !plan->join) || plan->argc == 0) {
		set_error(err, CORRAL_S_PLAN, EINVAL, NULL, "the plan names no root filesystem or no process");
		return -1;
	}
	return 0;
nomem:
	set_error(err, CORRAL_S_PLAN, ENOMEM, NULL, "out of memory");
	return -1;
}
