/* file.c - read a bounded regular file whole; see file.h. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

const char *espl__file_size_text(size_t bytes, char *buf, size_t cap)
{
	if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
		snprintf(buf, cap, "%zu MB", bytes >> 20);
	else if (bytes >= 1024 && bytes % 1024 == 0)
		snprintf(buf, cap, "%zu KB", bytes >> 10);
	else
		snprintf(buf, cap, "%zu bytes", bytes);
	return buf;
}

static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO (named pipe)";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/* Check what fd is before anything is read from it. */
static int check_regular(int fd, const char *path, size_t max, const char *what, size_t *size,
                         espl_error *err)
{
	struct stat st;
	char lim[32];

	if (fstat(fd, &st) < 0)
		return espl_fail_errno(err, "%s %s: cannot stat", what, path);
	if (!S_ISREG(st.st_mode))
		return espl_fail(err, ESPL_EARG, "%s %s is %s; espline reads only regular files", what, path,
		                 file_kind(st.st_mode));
	if ((unsigned long long)st.st_size > max)
		return espl_fail(err, ESPL_EARG, "%s %s is %lld bytes, over the %s limit for %s files",
		                 what, path, (long long)st.st_size, espl__file_size_text(max, lim, sizeof lim), what);
	*size = (size_t)st.st_size;
	return ESPL_OK;
}

/* Read exactly size bytes, then make sure nothing follows. */
static int read_exact(int fd, const char *path, const char *what, char *buf, size_t size, espl_error *err)
{
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return espl_fail_errno(err, "%s %s: read error", what, path);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	char extra;
	ssize_t more;
	do
		more = read(fd, &extra, 1);
	while (more < 0 && errno == EINTR);
	if (got != size || more > 0)
		return espl_fail(err, ESPL_EARG, "%s %s changed size while it was being read (%zu bytes expected)",
		                 what, path, size);
	return ESPL_OK;
}

int espl__file_read(const char *path, size_t max, const char *what, char **data, size_t *len,
                    espl_error *err)
{
	size_t size = 0;
	*data = NULL;
	*len = 0;

	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return espl_fail_errno(err, "cannot open %s %s", what, path);
	int rc = check_regular(fd, path, max, what, &size, err);
	char *buf = NULL;
	if (rc == 0 && !(buf = malloc(size + 1)))
		rc = espl_fail(err, ESPL_ENOMEM, "out of memory reading %s %s (%zu bytes)", what, path, size);
	if (rc == 0)
		rc = read_exact(fd, path, what, buf, size, err);
	close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[size] = '\0';
	*data = buf;
	*len = size;
	return ESPL_OK;
}
