/* snapfile.h: memhound's snapshot file format, one writer and one reader.
 *
 * The format is documented in docs/snapshot-format.md; its layout constants
 * are in snapfile_format.h.  Encoding is snapfile_encode.c, decoding
 * snapfile_decode.c, files on disk snapfile_io.c.  Every file the writer
 * produces, the reader accepts; the reader treats every byte as hostile.
 * Python-free: nothing here raises, calls Python or allocates through the
 * hooked allocators (memory comes from malloc and rawmem.h), so callers
 * may release the GIL around these calls; they touch only their arguments.
 */
#ifndef MH_SNAPFILE_H
#define MH_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "snapdata.h"

/* Every function below writes a NUL-terminated message of at most err_len
 * bytes into err on failure (nothing when err is NULL or err_len is 0). */

/* Encode snap (borrowed, not modified) into a new buffer: on success
 * returns 0 with *out (plain malloc; the caller frees it with free()) and
 * *out_len set.  The header records this build's sizeof(void *).
 * Returns -1 with *out = NULL, *out_len = 0 and a message in err when snap
 * fails mh_snapdata_validate(), its timestamp is not finite, one of its
 * strings is not UTF-8 as mh_utf8_check() defines it (surrogates allowed),
 * or memory runs out (scratch comes from rawmem.h, so failure injection
 * applies).  Those are exactly what the reader would reject, so any buffer
 * returned decodes. */
int mh_snapfile_encode(const mh_snapdata_t *snap, uint8_t **out,
                       size_t *out_len, char *err, size_t err_len);

/* Encode snap as mh_snapfile_encode does and store it at path, replacing
 * whatever is there.  The bytes go to a new temporary file beside it,
 * "<path>.tmp-<pid>-<n>" (created with O_EXCL, mode 0666 & ~umask; the
 * directory must be writable), which is fsync()ed, closed and then
 * rename()d over path.  So path is replaced atomically: readers and a
 * crash see the old file or the whole new one, never part of it (the
 * directory itself is not fsync()ed).  The rename replaces a symlink at
 * path rather than writing through it, and the new file does not keep the
 * old one's mode, owner or hard links.
 * Returns 0, or -1 with a message in err: the encoder's reasons (errno
 * then unspecified), or an I/O error naming the path and strerror(errno),
 * with errno set to the failing call's error (ENOMEM when the temporary
 * name cannot be allocated).  On failure the temporary file is removed and
 * path is untouched. */
int mh_snapfile_write(const mh_snapdata_t *snap, const char *path, char *err,
                      size_t err_len);

/* Decode data[0..len) (borrowed), which must be exactly one file: trailing
 * bytes are an error.  Returns a new snapshot that passes
 * mh_snapdata_validate(), owned by the caller (mh_snapdata_free), or NULL
 * with a message in err saying what is wrong and where ("truncated ...",
 * "bad magic", "checksum mismatch", "unsupported format version N", ...;
 * docs/snapshot-format.md lists the checks).  Never reads outside
 * data[0..len), and allocates at most a small constant times len, from
 * rawmem.h; on failure everything it allocated is freed. */
mh_snapdata_t *mh_snapfile_decode(const uint8_t *data, size_t len, char *err,
                                  size_t err_len);

/* Read the file at path to its end (any kind of file: the buffer grows if
 * it is larger than fstat() says) and decode it as mh_snapfile_decode
 * does.  Returns a new snapshot (mh_snapdata_free), or NULL with a message
 * in err: an I/O error naming the path and strerror(errno), with errno
 * set (ENOMEM when out of memory, EFBIG when the file cannot fit in
 * memory), or the decoder's message (errno then unspecified). */
mh_snapdata_t *mh_snapfile_read(const char *path, char *err, size_t err_len);

#endif /* MH_SNAPFILE_H */
