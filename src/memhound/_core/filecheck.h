/* filecheck.h: the checks every memhound file format makes before it
 * parses anything: the size recorded in the header against the bytes
 * present, a minimum size, and the CRC-32C in the last 4 bytes.
 *
 * Shared by the snapshot reader (snapfile_decode.c) and the capture reader
 * (capfile.c), so that both word these failures alike.  One static inline
 * function: no state, Python-free, any thread.
 */
#ifndef MH_FILECHECK_H
#define MH_FILECHECK_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "crc32c.h"
#include "snapfile_format.h"

/* Check data[0..len), a file of kind `what` ("snapshot", "capture") whose
 * header says it is file_size bytes long: the sizes must be equal ("truncated
 * file", "trailing data"), len at least min_len ("corrupt header") and the
 * last 4 bytes the CRC-32C of the others, little-endian ("checksum
 * mismatch").  min_len must be at least 4.  Returns 0, or -1 with a message
 * in err[0..err_len).  Reads nothing outside data[0..len).  Can't fail
 * otherwise. */
static inline int
mh_filecheck_size_and_checksum(const uint8_t *data, size_t len,
                               uint64_t file_size, size_t min_len,
                               const char *what, char *err, size_t err_len)
{
    if (file_size > len) {
        mh_snapfile_set_error(
            err, err_len,
            "truncated file: the header says %llu bytes, only %zu are "
            "present",
            (unsigned long long)file_size, len);
        return -1;
    }
    if (file_size < len) {
        mh_snapfile_set_error(
            err, err_len,
            "%llu bytes of trailing data after the %s (the header says %llu "
            "bytes, the file has %zu)",
            (unsigned long long)(len - file_size), what,
            (unsigned long long)file_size, len);
        return -1;
    }
    if (len < min_len) {
        mh_snapfile_set_error(err, err_len,
                              "corrupt header: a %zu-byte file cannot hold a "
                              "%s",
                              len, what);
        return -1;
    }
    uint32_t stored = (uint32_t)mh_le_load(data + len - 4, 4);
    uint32_t computed = mh_crc32c_compute(data, len - 4);
    if (stored != computed) {
        mh_snapfile_set_error(
            err, err_len,
            "checksum mismatch (stored 0x%08x, computed 0x%08x): the "
            "file is corrupt",
            (unsigned)stored, (unsigned)computed);
        return -1;
    }
    return 0;
}

#endif /* MH_FILECHECK_H */
