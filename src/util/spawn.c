/* spawn.c - run a command without a shell, with a time limit; see
 * src/util/spawn.h. */
#include "util/spawn.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The child's side of the pipes: stdin, stdout, /dev/null for stderr, and
 * nothing else of ours. */
static int file_actions(posix_spawn_file_actions_t *fa, int in_r, int out_w)
{
	int rc = posix_spawn_file_actions_init(fa);
	if (rc == 0)
		rc = in_r >= 0 ? posix_spawn_file_actions_adddup2(fa, in_r, 0)
		               : posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(fa, out_w, 1);
	if (rc == 0)
		rc = posix_spawn_file_actions_addopen(fa, 2, "/dev/null", O_WRONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
	return rc;
}

static int start(char *const argv[], int in_r, int out_w, pid_t *pid, espl_error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc = file_actions(&fa, in_r, out_w);
	if (rc == 0)
		rc = posix_spawnattr_init(&attr);
	if (rc == 0) {
		/* a group of its own, so a timeout kills what it started too; and
		 * signals as a fresh process has them, not as this thread has
		 * them (the station blocks SIGINT and SIGTERM, spawn SIGPIPE) */
		sigset_t none, fresh;
		sigemptyset(&none);
		sigemptyset(&fresh);
		sigaddset(&fresh, SIGPIPE);
		sigaddset(&fresh, SIGINT);
		sigaddset(&fresh, SIGTERM);
		posix_spawnattr_setpgroup(&attr, 0);
		posix_spawnattr_setsigmask(&attr, &none);
		posix_spawnattr_setsigdefault(&attr, &fresh);
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
		rc = posix_spawnp(pid, argv[0], &fa, &attr, argv, environ);
		posix_spawnattr_destroy(&attr);
	}
	posix_spawn_file_actions_destroy(&fa);
	if (rc == 0)
		return ESPL_OK;
	return espl_fail(err, rc == ENOENT ? ESPL_ENOTFOUND : rc == EACCES ? ESPL_EPERM : ESPL_ESYS,
	                 "cannot start: %s", strerror(rc));
}

typedef struct feed {
	const unsigned char *in;
	size_t in_len, sent;
	int in_w, out_r;
	espl__spawn_result *res;
} feed;

static void feed_stdin(feed *f)
{
	while (f->sent < f->in_len) {
		ssize_t n = write(f->in_w, f->in + f->sent, f->in_len - f->sent);
		if (n > 0) {
			f->sent += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		break;  /* EPIPE: the child does not read its stdin */
	}
	close_fd(&f->in_w);
}

static void drain_stdout(feed *f)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(f->out_r, buf, sizeof buf);
		if (n > 0) {
			size_t room = ESPL_SPAWN_OUT_MAX - f->res->out_len;
			size_t take = (size_t)n < room ? (size_t)n : room;
			memcpy(f->res->out + f->res->out_len, buf, take);
			f->res->out_len += take;
			f->res->out[f->res->out_len] = '\0';
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		close_fd(&f->out_r);  /* EOF */
		return;
	}
}

/* Feed and read until the child ends or the deadline passes. */
static int supervise(pid_t pid, feed *f, double deadline, int *status)
{
	for (;;) {
		pid_t got = waitpid(pid, status, WNOHANG);
		if (got == pid) {
			if (f->out_r >= 0)
				drain_stdout(f);
			return ESPL_OK;
		}
		if (got < 0 && errno != EINTR)
			return ESPL_ESYS;
		if (espl__now_s() >= deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return ESPL_ETIMEOUT;
		}
		struct pollfd p[2];
		nfds_t np = 0;
		if (f->in_w >= 0)
			p[np++] = (struct pollfd){ f->in_w, POLLOUT, 0 };
		if (f->out_r >= 0)
			p[np++] = (struct pollfd){ f->out_r, POLLIN, 0 };
		/* short waits: the child's exit is seen by waitpid, not by poll */
		if (poll(np ? p : NULL, np, 10) > 0) {
			if (f->in_w >= 0)
				feed_stdin(f);
			if (f->out_r >= 0)
				drain_stdout(f);
		}
	}
}

/* SIGPIPE from writing to a child that closed its stdin goes to this
 * thread: block it while the child runs, then consume it. */
static void pipe_signal(int block, sigset_t *saved)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (block) {
		pthread_sigmask(SIG_BLOCK, &set, saved);
		return;
	}
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

int espl__spawn_run(char *const argv[], const void *in, size_t in_len, unsigned timeout_ms,
                    espl__spawn_result *res, espl_error *err)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, status = 0;
	sigset_t saved;
	pid_t pid;

	memset(res, 0, sizeof *res);
	if (!argv || !argv[0] || !*argv[0])
		return espl_fail(err, ESPL_EARG, "empty command");
	if ((in && pipe2(in_pipe, O_CLOEXEC) < 0) || pipe2(out_pipe, O_CLOEXEC) < 0) {
		int e = errno;
		close_fd(&in_pipe[0]);
		close_fd(&in_pipe[1]);
		return espl_fail(err, ESPL_ESYS, "cannot make a pipe: %s", strerror(e));
	}
	double started = espl__now_s();
	int rc = start(argv, in_pipe[0], out_pipe[1], &pid, err);
	close_fd(&in_pipe[0]);
	close_fd(&out_pipe[1]);
	if (rc < 0) {
		close_fd(&in_pipe[1]);
		close_fd(&out_pipe[0]);
		return rc;
	}
	feed f = { in, in ? in_len : 0, 0, in_pipe[1], out_pipe[0], res };
	if (f.in_w >= 0)
		fcntl(f.in_w, F_SETFL, O_NONBLOCK);
	fcntl(f.out_r, F_SETFL, O_NONBLOCK);
	pipe_signal(1, &saved);
	if (f.in_w >= 0)
		feed_stdin(&f);
	rc = supervise(pid, &f, started + timeout_ms / 1000.0, &status);
	pipe_signal(0, &saved);
	close_fd(&f.in_w);
	close_fd(&f.out_r);
	res->seconds = espl__now_s() - started;
	if (rc == ESPL_ETIMEOUT) {
		res->timed_out = true;
		return espl_fail(err, ESPL_ETIMEOUT, "still running after %u ms: killed", timeout_ms);
	}
	if (rc < 0)
		return espl_fail(err, ESPL_ESYS, "waiting for it: %s", strerror(errno));
	res->exited = WIFEXITED(status);
	res->status = res->exited ? WEXITSTATUS(status) : WTERMSIG(status);
	return ESPL_OK;
}

const char *espl__spawn_outcome(const espl__spawn_result *res, unsigned timeout_ms, char *buf, size_t cap)
{
	if (res->timed_out)
		snprintf(buf, cap, "still running after %u ms: killed", timeout_ms);
	else if (res->exited)
		snprintf(buf, cap, "exited %d", res->status);
	else
		snprintf(buf, cap, "killed by signal %d", res->status);
	return buf;
}
