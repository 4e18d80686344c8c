/* snapfile_format.h: the layout of a snapshot file, shared by its one
 * writer (snapfile_encode.c) and its one reader (snapfile_decode.c); the
 * prose and byte-level description is docs/snapshot-format.md.
 *
 * Internal to the snapfile_*.c files (the public API is snapfile.h).
 * Changing anything here changes the format: bump MH_SNAPFILE_VERSION and
 * follow the versioning policy in the doc.  Constants and one message
 * helper only: no state, Python-free.
 */
#ifndef MH_SNAPFILE_FORMAT_H
#define MH_SNAPFILE_FORMAT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* "\x89MHS\r\n\x1a\n": the high byte catches 7-bit transfers, CR LF and
 * ^Z catch text-mode line ending conversion (the PNG trick). */
#define MH_SNAPFILE_MAGIC "\x89MHS\r\n\x1a\n"
#define MH_SNAPFILE_MAGIC_SIZE 8
#define MH_SNAPFILE_VERSION 1

/* The one list of section tags.  A version 1 file holds STRINGS, FRAMES,
 * TRACEBACKS and BLOCKS exactly once and in this order, then ATTRIBUTES at
 * most once (the only optional section), then END; any other tag, order or
 * repetition is an error. */
typedef enum {
    MH_SECTION_END = 0,
    MH_SECTION_STRINGS = 1,
    MH_SECTION_FRAMES = 2,
    MH_SECTION_TRACEBACKS = 3,
    MH_SECTION_BLOCKS = 4,
    MH_SECTION_ATTRIBUTES = 5, /* the payload is the text: UTF-8, at most
                                  MH_SNAPDATA_MAX_ATTRIBUTES bytes */
    MH_SECTION_LAST = MH_SECTION_ATTRIBUTES,
} mh_section_tag_t;

/* Fixed header: offsets of its little-endian fields, after the magic. */
enum {
    MH_HDR_VERSION = 8,       /* u16 */
    MH_HDR_POINTER_SIZE = 10, /* u8: sizeof(void *) of the writer */
    MH_HDR_RESERVED = 11,     /* u8: 0 */
    MH_HDR_FLAGS = 12,        /* u32: no flag is defined in version 1 */
    MH_HDR_FILE_SIZE = 16,    /* u64: total bytes, checksum included */
    MH_HDR_HEXVERSION = 24,   /* u32: PY_VERSION_HEX of the writer */
    MH_HDR_TB_LIMIT = 28,     /* u32 */
    MH_HDR_SAMPLE_MEAN = 32,  /* u64 */
    MH_HDR_TIMESTAMP = 40,    /* f64, IEEE 754 binary64 */
    MH_HDR_SIZE = 48,
    MH_CHECKSUM_SIZE = 4, /* CRC-32C of every byte before it, at the end */
};

/* Format a message into err[0..err_len) (truncated, NUL-terminated);
 * nothing when err is NULL or err_len is 0.  Can't fail. */
static inline void mh_snapfile_set_error(char *err, size_t err_len,
                                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void
mh_snapfile_set_error(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

#endif /* MH_SNAPFILE_FORMAT_H */
