/* snapfile_io.c: snapshot files on disk: mh_snapfile_write (encode, then
 * replace the target atomically) and mh_snapfile_read (read the whole
 * file, then decode); the format itself is snapfile_encode.c and
 * snapfile_decode.c.
 *
 * The only state is an atomic counter for temporary file names.  Errors
 * name the path and keep errno; no partial file is ever left under the
 * target's name.  Buffers come from rawmem.h, except the encoder's output
 * (plain malloc).  Python-free: callers may release the GIL around calls.
 */
#include "snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rawmem.h"
#include "snapfile_format.h"

/* Makes temporary names unique within the process (the pid makes them
 * unique across processes).  Relaxed atomic: only distinctness matters. */
static unsigned long tmp_counter;

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
mh_snapfile_write(const mh_snapdata_t *snap, const char *path, char *err,
                  size_t err_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char *tmp = NULL;
    size_t tmp_size = 0;
    int fd = -1;
    int saved_errno = 0;

    if (mh_snapfile_encode(snap, &buf, &len, err, err_len) < 0) {
        return -1;
    }
    /* A temporary file beside the target, renamed over it once complete
     * and synced: a crash leaves the old file or the new one, never half a
     * file under the real name.  O_EXCL so that an existing file (or a
     * symlink planted there) is never written through. */
    tmp_size = strlen(path) + 64;
    tmp = mh_rawmem_malloc(tmp_size);
    if (tmp == NULL) {
        mh_snapfile_set_error(err, err_len, "out of memory writing %s", path);
        saved_errno = ENOMEM;
        goto error;
    }
    for (int attempt = 0; fd < 0; attempt++) {
        unsigned long n =
            __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, tmp_size, "%s.tmp-%ld-%lu", path, (long)getpid(), n);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && (errno != EEXIST || attempt >= 100)) {
            saved_errno = errno;
            mh_snapfile_set_error(err, err_len, "cannot create %s: %s", tmp,
                                  strerror(saved_errno));
            mh_rawmem_free(tmp, tmp_size);
            tmp = NULL; /* nothing to unlink */
            goto error;
        }
    }
    if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
        saved_errno = errno;
        mh_snapfile_set_error(err, err_len, "cannot write %s: %s", tmp,
                              strerror(saved_errno));
        goto error;
    }
    int rc = close(fd);
    fd = -1;
    if (rc < 0) {
        saved_errno = errno;
        mh_snapfile_set_error(err, err_len, "cannot write %s: %s", tmp,
                              strerror(saved_errno));
        goto error;
    }
    if (rename(tmp, path) < 0) {
        saved_errno = errno;
        mh_snapfile_set_error(err, err_len, "cannot rename %s to %s: %s", tmp,
                              path, strerror(saved_errno));
        goto error;
    }
    mh_rawmem_free(tmp, tmp_size);
    free(buf);
    return 0;
error:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL) {
        unlink(tmp);
        mh_rawmem_free(tmp, tmp_size);
    }
    free(buf);
    errno = saved_errno;
    return -1;
}

mh_snapdata_t *
mh_snapfile_read(const char *path, char *err, size_t err_len)
{
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    int saved_errno = 0;
    mh_snapdata_t *snap = NULL;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        saved_errno = errno;
        mh_snapfile_set_error(err, err_len, "cannot open %s: %s", path,
                              strerror(saved_errno));
        goto done;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        saved_errno = errno;
        mh_snapfile_set_error(err, err_len, "cannot stat %s: %s", path,
                              strerror(saved_errno));
        goto done;
    }
    /* One byte more than the size so that EOF shows in the first pass;
     * growing handles files that are not regular or that grow. */
    if (st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX / 2) {
        cap = (size_t)st.st_size + 1;
    }
    else {
        cap = 65536;
    }
    buf = mh_rawmem_malloc(cap);
    if (buf == NULL) {
        saved_errno = ENOMEM;
        mh_snapfile_set_error(
            err, err_len, "out of memory reading %s (%zu bytes)", path, cap);
        cap = 0;
        goto done;
    }
    for (;;) {
        if (len == cap) {
            if (cap > SIZE_MAX / 2) {
                saved_errno = EFBIG;
                mh_snapfile_set_error(err, err_len, "%s is too large", path);
                goto done;
            }
            uint8_t *bigger = mh_rawmem_realloc(buf, cap, cap * 2);
            if (bigger == NULL) {
                saved_errno = ENOMEM;
                mh_snapfile_set_error(err, err_len, "out of memory reading %s",
                                      path);
                goto done;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            saved_errno = errno;
            mh_snapfile_set_error(err, err_len, "cannot read %s: %s", path,
                                  strerror(saved_errno));
            goto done;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    snap = mh_snapfile_decode(buf, len, err, err_len);
done:
    if (fd >= 0) {
        close(fd);
    }
    mh_rawmem_free(buf, cap);
    if (snap == NULL && saved_errno != 0) {
        errno = saved_errno;
    }
    return snap;
}
