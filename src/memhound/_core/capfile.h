/* capfile.h: memhound's capture file (.mhc): one run's leak report and
 * the snapshots at peak and at exit, in one checksummed container.
 *
 * The format is documented in docs/capture-format.md.  The report is
 * opaque UTF-8 text here (JSON, parsed by the Python side); the snapshots
 * are embedded snapshot files (docs/snapshot-format.md), written by
 * mh_snapfile_encode and read back by mh_snapfile_decode.  Python-free: no
 * global state, nothing raises or calls Python, memory from malloc and
 * rawmem.h, so callers may release the GIL; functions touch only their
 * arguments.
 */
#ifndef MH_CAPFILE_H
#define MH_CAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "snapdata.h"

/* "\x89MHC\r\n\x1a\n", in the style of the snapshot magic. */
#define MH_CAPFILE_MAGIC "\x89MHC\r\n\x1a\n"
#define MH_CAPFILE_MAGIC_SIZE 8
#define MH_CAPFILE_VERSION 1
/* Most bytes of report text a capture may hold. */
#define MH_CAPFILE_MAX_REPORT ((size_t)256 << 20)

/* The one list of section tags.  A version 1 file holds REPORT once, then
 * SNAPSHOT_PEAK at most once, then SNAPSHOT_EXIT at most once, then END;
 * any other tag, order or repetition is an error. */
typedef enum {
    MH_CAPSECTION_END = 0,
    MH_CAPSECTION_REPORT = 1,        /* UTF-8 text (JSON) */
    MH_CAPSECTION_SNAPSHOT_PEAK = 2, /* a whole snapshot file */
    MH_CAPSECTION_SNAPSHOT_EXIT = 3, /* a whole snapshot file */
    MH_CAPSECTION_LAST = MH_CAPSECTION_SNAPSHOT_EXIT,
} mh_capsection_tag_t;

/* Fixed header, little-endian fields after the magic. */
enum {
    MH_CAPHDR_VERSION = 8,    /* u16 */
    MH_CAPHDR_RESERVED = 10,  /* u16: 0 */
    MH_CAPHDR_FLAGS = 12,     /* u32: no flag is defined in version 1 */
    MH_CAPHDR_FILE_SIZE = 16, /* u64: total bytes, checksum included */
    MH_CAPHDR_SIZE = 24,
    MH_CAPFILE_CHECKSUM_SIZE = 4, /* CRC-32C of every byte before it */
};

/* A decoded capture; every member is owned by it (mh_capture_free). */
typedef struct {
    char *report;        /* report_len bytes of UTF-8, NUL-terminated */
    size_t report_len;   /* excluding the NUL */
    mh_snapdata_t *peak; /* NULL when the file has no peak snapshot */
    mh_snapdata_t *exit; /* NULL when the file has no exit snapshot */
} mh_capture_t;

/* Encode report[0..report_len) (UTF-8 in the sense of mh_utf8_check, at
 * most MH_CAPFILE_MAX_REPORT bytes) and the snapshots peak and exit (each
 * borrowed, NULL to leave it out) into a new buffer: on success returns 0
 * with *out (plain malloc, the caller free()s it) and *out_len set.
 * Returns -1 with *out = NULL, *out_len = 0 and a message in
 * err[0..err_len) when the report is too long or not UTF-8, a snapshot
 * cannot be encoded (mh_snapfile_encode's reasons) or memory runs out.
 * Any buffer returned decodes with mh_capfile_decode. */
int mh_capfile_encode(const char *report, size_t report_len,
                      const mh_snapdata_t *peak, const mh_snapdata_t *exit,
                      uint8_t **out, size_t *out_len, char *err,
                      size_t err_len);

/* Decode data[0..len) (borrowed), exactly one capture file.  Returns a
 * new capture (mh_capture_free), or NULL with a message in err naming
 * what is wrong and where (bad magic, unsupported version, truncated,
 * checksum mismatch, section order, a snapshot's own decoder message
 * prefixed with the section).  Treats the input as hostile: never reads
 * outside data[0..len), allocates at most a small constant times len
 * (rawmem.h), frees everything on failure. */
mh_capture_t *mh_capfile_decode(const uint8_t *data, size_t len, char *err,
                                size_t err_len);

/* Free a capture and everything it owns; NULL is allowed.  Can't fail. */
void mh_capture_free(mh_capture_t *cap);

#endif /* MH_CAPFILE_H */
