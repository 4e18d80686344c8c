/* capfile.c: the one writer and the one reader of capture files
 * (docs/capture-format.md, layout in capfile.h).
 *
 * A capture is a header, tagged sections (the report text, then the
 * embedded snapshot files) and a CRC-32C.  The embedded snapshots are
 * encoded and decoded by snapfile_*.c, so they get that reader's checks.
 * The decoder treats its input as hostile: every length is checked against
 * the bytes left before it is used.  No global state: Python-free and
 * reentrant; output buffers are plain malloc, everything else rawmem.h.
 */
#include "capfile.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"
#include "filecheck.h"
#include "rawmem.h"
#include "snapfile.h"
#include "snapfile_format.h"
#include "utf8.h"

static const char *
capsection_name(unsigned tag)
{
    static const char *const names[] = {"end", "report", "snapshot_peak",
                                        "snapshot_exit"};
    return tag <= MH_CAPSECTION_LAST ? names[tag] : "unknown";
}

/* ---- writer ------------------------------------------------------------ */

static uint8_t *
put_section(uint8_t *p, unsigned tag, const void *payload, size_t len)
{
    *p++ = (uint8_t)tag;
    p = mh_varint_encode(p, len);
    if (len) {
        memcpy(p, payload, len);
    }
    return p + len;
}

int
mh_capfile_encode(const char *report, size_t report_len,
                  const mh_snapdata_t *peak, const mh_snapdata_t *exit,
                  uint8_t **out, size_t *out_len, char *err, size_t err_len)
{
    uint8_t *snap_buf[2] = {NULL, NULL};
    size_t snap_len[2] = {0, 0};
    const mh_snapdata_t *snaps[2] = {peak, exit};
    static const char *const which[2] = {"peak", "exit"};
    uint8_t *buf = NULL;
    int rc = -1;

    *out = NULL;
    *out_len = 0;
    if (report_len > MH_CAPFILE_MAX_REPORT) {
        mh_snapfile_set_error(err, err_len,
                              "report: %zu bytes, at most %zu are allowed",
                              report_len, MH_CAPFILE_MAX_REPORT);
        return -1;
    }
    size_t bad = mh_utf8_check((const uint8_t *)report, report_len);
    if (bad != report_len) {
        mh_snapfile_set_error(err, err_len,
                              "report: not valid UTF-8 (byte %zu)", bad);
        return -1;
    }
    /* header + report section + end section + checksum */
    size_t total = MH_CAPHDR_SIZE + 1 + mh_varint_len(report_len) +
                   report_len + 2 + MH_CAPFILE_CHECKSUM_SIZE;
    for (int i = 0; i < 2; i++) {
        if (snaps[i] == NULL) {
            continue;
        }
        char snap_err[200];
        if (mh_snapfile_encode(snaps[i], &snap_buf[i], &snap_len[i], snap_err,
                               sizeof(snap_err)) < 0) {
            mh_snapfile_set_error(err, err_len, "%s snapshot: %s", which[i],
                                  snap_err);
            goto done;
        }
        total += 1 + mh_varint_len(snap_len[i]) + snap_len[i];
    }
    buf = malloc(total);
    if (buf == NULL) {
        mh_snapfile_set_error(err, err_len,
                              "out of memory for a %zu-byte capture", total);
        goto done;
    }
    memcpy(buf, MH_CAPFILE_MAGIC, MH_CAPFILE_MAGIC_SIZE);
    mh_le_store(buf + MH_CAPHDR_VERSION, MH_CAPFILE_VERSION, 2);
    mh_le_store(buf + MH_CAPHDR_RESERVED, 0, 2);
    mh_le_store(buf + MH_CAPHDR_FLAGS, 0, 4);
    mh_le_store(buf + MH_CAPHDR_FILE_SIZE, total, 8);
    uint8_t *p = buf + MH_CAPHDR_SIZE;
    p = put_section(p, MH_CAPSECTION_REPORT, report, report_len);
    for (int i = 0; i < 2; i++) {
        if (snap_buf[i] != NULL) {
            p = put_section(p, MH_CAPSECTION_SNAPSHOT_PEAK + (unsigned)i,
                            snap_buf[i], snap_len[i]);
        }
    }
    p = put_section(p, MH_CAPSECTION_END, NULL, 0);
    mh_le_store(p, mh_crc32c_compute(buf, (size_t)(p - buf)), 4);
    *out = buf;
    *out_len = total;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    free(snap_buf[0]);
    free(snap_buf[1]);
    return rc;
}

/* ---- reader ------------------------------------------------------------ */

void
mh_capture_free(mh_capture_t *cap)
{
    if (cap == NULL) {
        return;
    }
    mh_rawmem_free(cap->report, cap->report_len + 1);
    mh_snapdata_free(cap->peak);
    mh_snapdata_free(cap->exit);
    mh_rawmem_free(cap, sizeof(*cap));
}

/* Magic, version, size and checksum, most useful problem first. */
static int
check_header(const uint8_t *data, size_t len, char *err, size_t err_len)
{
    if (len == 0) {
        mh_snapfile_set_error(err, err_len,
                              "empty file (not a memhound capture)");
        return -1;
    }
    if (memcmp(data, MH_CAPFILE_MAGIC,
               len < MH_CAPFILE_MAGIC_SIZE ? len : MH_CAPFILE_MAGIC_SIZE)) {
        mh_snapfile_set_error(err, err_len,
                              "not a memhound capture (bad magic)");
        return -1;
    }
    if (len < MH_CAPHDR_SIZE) {
        mh_snapfile_set_error(
            err, err_len,
            "truncated file: %zu bytes, the header alone needs %d", len,
            MH_CAPHDR_SIZE);
        return -1;
    }
    unsigned version = (unsigned)mh_le_load(data + MH_CAPHDR_VERSION, 2);
    if (version != MH_CAPFILE_VERSION) {
        mh_snapfile_set_error(
            err, err_len,
            "unsupported capture format version %u (this memhound reads %d)",
            version, MH_CAPFILE_VERSION);
        return -1;
    }
    uint64_t file_size = mh_le_load(data + MH_CAPHDR_FILE_SIZE, 8);
    if (mh_filecheck_size_and_checksum(
            data, len, file_size,
            MH_CAPHDR_SIZE + 2 + MH_CAPFILE_CHECKSUM_SIZE, "capture", err,
            err_len) < 0) {
        return -1;
    }
    if (mh_le_load(data + MH_CAPHDR_RESERVED, 2) != 0 ||
        mh_le_load(data + MH_CAPHDR_FLAGS, 4) != 0) {
        mh_snapfile_set_error(err, err_len,
                              "unknown header flags or reserved bits (capture "
                              "format version 1 defines none)");
        return -1;
    }
    return 0;
}

/* Copy and check the report section's payload into cap->report. */
static int
read_report(mh_capture_t *cap, const uint8_t *p, size_t n, size_t at,
            char *err, size_t err_len)
{
    if (n > MH_CAPFILE_MAX_REPORT) {
        mh_snapfile_set_error(err, err_len,
                              "report section at offset %zu: %zu bytes, at "
                              "most %zu are allowed",
                              at, n, MH_CAPFILE_MAX_REPORT);
        return -1;
    }
    size_t bad = mh_utf8_check(p, n);
    if (bad != n) {
        mh_snapfile_set_error(
            err, err_len,
            "report section: not valid UTF-8 (byte %zu, at offset %zu)", bad,
            at + bad);
        return -1;
    }
    cap->report = mh_rawmem_malloc(n + 1);
    if (cap->report == NULL) {
        mh_snapfile_set_error(err, err_len,
                              "out of memory for a %zu-byte report", n);
        return -1;
    }
    if (n) {
        memcpy(cap->report, p, n);
    }
    cap->report[n] = '\0';
    cap->report_len = n;
    return 0;
}

mh_capture_t *
mh_capfile_decode(const uint8_t *data, size_t len, char *err, size_t err_len)
{
    if (check_header(data, len, err, err_len) < 0) {
        return NULL;
    }
    mh_capture_t *cap = mh_rawmem_calloc(1, sizeof(*cap));
    if (cap == NULL) {
        mh_snapfile_set_error(err, err_len, "out of memory");
        return NULL;
    }
    const uint8_t *p = data + MH_CAPHDR_SIZE;
    const uint8_t *end = data + len - MH_CAPFILE_CHECKSUM_SIZE;
    unsigned next = MH_CAPSECTION_REPORT; /* lowest tag allowed next */
    for (;;) {
        size_t at = (size_t)(p - data);
        if (p >= end) {
            mh_snapfile_set_error(err, err_len,
                                  "truncated file: no end section before the "
                                  "checksum (offset %zu)",
                                  at);
            goto error;
        }
        unsigned tag = *p++;
        uint64_t n;
        mh_varint_status_t st = mh_varint_decode(&p, end, &n);
        if (st != MH_VARINT_OK) {
            mh_snapfile_set_error(err, err_len,
                                  "%s section at offset %zu: bad length "
                                  "varint (%s)",
                                  capsection_name(tag), at,
                                  st == MH_VARINT_TRUNCATED  ? "truncated"
                                  : st == MH_VARINT_TOO_LONG ? "too long"
                                                             : "overlong");
            goto error;
        }
        if (tag > MH_CAPSECTION_LAST) {
            mh_snapfile_set_error(
                err, err_len, "unknown section tag %u at offset %zu", tag, at);
            goto error;
        }
        if (n > (uint64_t)(end - p)) {
            mh_snapfile_set_error(err, err_len,
                                  "truncated file: %s section at offset %zu "
                                  "needs %llu bytes, %zu remain",
                                  capsection_name(tag), at,
                                  (unsigned long long)n, (size_t)(end - p));
            goto error;
        }
        if (tag == MH_CAPSECTION_END) {
            if (next == MH_CAPSECTION_REPORT) {
                mh_snapfile_set_error(err, err_len,
                                      "missing report section (found the end "
                                      "section at offset %zu)",
                                      at);
                goto error;
            }
            if (n != 0 || p != end) {
                mh_snapfile_set_error(err, err_len,
                                      "end section at offset %zu: %zu bytes "
                                      "between it and the checksum",
                                      at, (size_t)(end - p));
                goto error;
            }
            return cap;
        }
        if (tag < next) {
            mh_snapfile_set_error(err, err_len,
                                  "%s section at offset %zu: duplicate or "
                                  "out of order",
                                  capsection_name(tag), at);
            goto error;
        }
        if (next == MH_CAPSECTION_REPORT && tag != MH_CAPSECTION_REPORT) {
            mh_snapfile_set_error(err, err_len,
                                  "missing report section (found the %s "
                                  "section at offset %zu)",
                                  capsection_name(tag), at);
            goto error;
        }
        size_t payload_at = (size_t)(p - data);
        if (tag == MH_CAPSECTION_REPORT) {
            if (read_report(cap, p, (size_t)n, payload_at, err, err_len) < 0) {
                goto error;
            }
        }
        else {
            char snap_err[200];
            mh_snapdata_t *snap =
                mh_snapfile_decode(p, (size_t)n, snap_err, sizeof(snap_err));
            if (snap == NULL) {
                mh_snapfile_set_error(
                    err, err_len,
                    "%s section at offset %zu: embedded snapshot: %s",
                    capsection_name(tag), payload_at, snap_err);
                goto error;
            }
            if (tag == MH_CAPSECTION_SNAPSHOT_PEAK) {
                cap->peak = snap;
            }
            else {
                cap->exit = snap;
            }
        }
        p += n;
        next = tag + 1;
    }
error:
    mh_capture_free(cap);
    return NULL;
}
