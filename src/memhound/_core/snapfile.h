/* snapfile.h: memhound's snapshot file format, one writer and one reader.
 *
 * The format is documented in docs/snapshot-format.md.  The reader treats
 * every byte as hostile: every length and index is checked before use, and
 * any problem yields NULL with a message naming what is wrong; it never
 * reads out of bounds, crashes or allocates without bound (allocation sizes
 * are capped by what the input could possibly describe).
 *
 * Python-free.  The caller may release the GIL around these calls: they
 * touch only the snapshot and the file.
 */
#ifndef MH_SNAPFILE_H
#define MH_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "snapdata.h"

/* Encode snap into a new buffer (*out, *out_len; free with free()).
 * Returns 0, or -1 with a message in err when out of memory. */
int mh_snapfile_encode(const mh_snapdata_t *snap, uint8_t **out,
                       size_t *out_len, char *err, size_t err_len);

/* Write snap to path (created or truncated).  Returns 0, or -1 with a
 * message in err (errno is preserved for I/O errors). */
int mh_snapfile_write(const mh_snapdata_t *snap, const char *path, char *err,
                      size_t err_len);

/* Decode data[0..len).  Returns a new validated snapshot, or NULL with a
 * message in err saying what is wrong ("truncated ...", "bad magic",
 * "checksum mismatch", "unsupported version N", ...). */
mh_snapdata_t *mh_snapfile_decode(const uint8_t *data, size_t len, char *err,
                                  size_t err_len);

/* Read and decode the file at path.  Returns NULL with a message in err on
 * I/O errors (errno preserved) or bad content. */
mh_snapdata_t *mh_snapfile_read(const char *path, char *err, size_t err_len);

#endif /* MH_SNAPFILE_H */
