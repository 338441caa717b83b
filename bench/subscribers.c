/* N event subscribers in one small C process, for bench/event_latency.py: what a
 * subscriber costs is then not what is measured (100 Python readers decoding
 * 100,000 frames a second take more CPU than the daemon on a 2-core machine).
 *
 *   subscribers SOCKET N REQUEST_FILE OUT_FILE
 *
 * Each connection sends REQUEST_FILE's bytes (the Hello and Events frames, made
 * by the Python side), then reads frames: the first (Welcome) is skipped, every
 * other one counted, and those holding the msgpack string "die" are written to
 * OUT_FILE with their arrival time (CLOCK_REALTIME, read as soon as epoll says
 * the connection is readable): u32 connection, u64 ns, u32 length, payload.
 * Prints "ready" once every connection has sent its request; on SIGTERM writes
 * each connection's frame count (u32 each) after a u32 0xffffffff and exits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	unsigned char *buf;
	size_t len, cap;
	uint32_t frames; /* including Welcome */
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void put(FILE *out, const void *p, size_t n)
{
	if (fwrite(p, 1, n, out) != n)
		die("fwrite");
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: subscribers SOCKET N REQUEST_FILE OUT_FILE\n");
		return 2;
	}
	int n = atoi(argv[2]);
	unsigned char req[4096];
	FILE *rf = fopen(argv[3], "rb");
	if (!rf)
		die("request file");
	size_t reqlen = fread(req, 1, sizeof(req), rf);
	fclose(rf);
	FILE *out = fopen(argv[4], "wb");
	if (!out)
		die("out file");

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || ep < 0)
		die("signalfd/epoll");
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

	struct conn *cs = calloc(n, sizeof(*cs));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	for (int i = 0; i < n; i++) {
		cs[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
		if (write(cs[i].fd, req, reqlen) != (ssize_t)reqlen)
			die("write request");
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		cs[i].cap = 1 << 16;
		cs[i].buf = malloc(cs[i].cap);
		ev.data.u32 = i;
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	printf("ready\n");
	fflush(stdout);

	struct epoll_event evs[64];
	for (;;) {
		int k = epoll_wait(ep, evs, 64, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("epoll_wait");
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
		for (int e = 0; e < k; e++) {
			uint32_t i = evs[e].data.u32;
			if (i == UINT32_MAX) {
				uint32_t mark = UINT32_MAX;
				put(out, &mark, 4);
				for (int j = 0; j < n; j++) {
					uint32_t c = cs[j].frames ? cs[j].frames - 1 : 0;
					put(out, &c, 4);
				}
				fclose(out);
				return 0;
			}
			struct conn *c = &cs[i];
			for (;;) {
				if (c->cap - c->len < 65536) {
					c->cap *= 2;
					c->buf = realloc(c->buf, c->cap);
				}
				ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
				if (r <= 0)
					break;
				c->len += r;
			}
			size_t pos = 0;
			while (c->len - pos >= 4) {
				unsigned char *f = c->buf + pos;
				uint32_t size = (uint32_t)f[0] << 24 | f[1] << 16 | f[2] << 8 | f[3];
				if (c->len - pos - 4 < size)
					break;
				if (c->frames++ > 0 && memmem(f + 4, size, "\xa3" "die", 4)) {
					put(out, &i, 4);
					put(out, &now, 8);
					put(out, &size, 4);
					put(out, f + 4, size);
				}
				pos += 4 + size;
			}
			memmove(c->buf, c->buf + pos, c->len - pos);
			c->len -= pos;
		}
	}
}
