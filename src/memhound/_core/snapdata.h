/* snapdata.h: a snapshot as plain C data, free of Python objects.
 *
 * A snapshot is what memhound knew about live blocks at one moment: one
 * record per block, the tracebacks they point to, the frames those
 * tracebacks are made of, and the strings (file and function names) the
 * frames name.  Frames are already resolved to file, function and line, so
 * a snapshot loaded from disk and one taken in-process are the same thing.
 * The statistics (stats.c) and the file format (snapfile_*.c) work on this
 * structure only, which keeps them testable and fuzzable without Python.
 *
 * Invariants (mh_snapdata_validate checks them all; readers of untrusted
 * input must call it before handing the data to anything else):
 *   blocks[i].traceback < ntracebacks
 *   tracebacks[t].first + tracebacks[t].nframe <= nframe_ids
 *   tracebacks[t].nframe <= tracebacks[t].total_nframe (total saturates)
 *   frame_ids[k] < nframes
 *   frames[f].filename, frames[f].function < nstrings
 *   string_offsets has nstrings + 1 ascending entries, the last equal to
 *   string_bytes; string s is string_data[offsets[s] .. offsets[s+1]), UTF-8
 *   (surrogates passed through), not NUL-terminated.
 *   Traceback 0 is always present and is the empty traceback, used for
 *   blocks allocated where no Python frame could be read.
 *   attributes is NULL (then attributes_len is 0) or holds attributes_len
 *   <= MH_SNAPDATA_MAX_ATTRIBUTES bytes of UTF-8 as for strings.
 * Ownership: every array is owned by the mh_snapdata_t and freed by
 * mh_snapdata_free().  Not thread-safe; callers serialize (the GIL does).
 */
#ifndef MH_SNAPDATA_H
#define MH_SNAPDATA_H

#include <stddef.h>
#include <stdint.h>

/* Which allocator a block came from.  tracemalloc calls all of the first
 * three "domain 0"; memhound keeps them apart. */
typedef enum {
    MH_DOMAIN_RAW = 0,    /* PyMem_RawMalloc family */
    MH_DOMAIN_MEM = 1,    /* PyMem_Malloc family */
    MH_DOMAIN_OBJ = 2,    /* PyObject_Malloc family */
    MH_DOMAIN_NATIVE = 3, /* libc malloc from native code (issue 5) */
    MH_DOMAIN_COUNT = 4
} mh_domain_t;

/* Most bytes of attributes text a snapshot may hold: far more than the
 * JSON of a few attributes set on a Python snapshot object needs, and
 * little enough that a hostile file cannot make a reader keep much. */
#define MH_SNAPDATA_MAX_ATTRIBUTES ((size_t)16 << 20)

typedef struct {
    uint64_t size;       /* bytes requested */
    uint32_t traceback;  /* index into tracebacks */
    uint16_t generation; /* generation in which the block was allocated */
    uint8_t domain;      /* mh_domain_t */
    uint8_t flags;       /* reserved, 0 */
} mh_snap_block_t;

typedef struct {
    uint32_t first;        /* index of the innermost frame id in frame_ids */
    uint16_t nframe;       /* frames stored, innermost first */
    uint16_t total_nframe; /* frames on the stack when captured, >= nframe,
                              saturating at UINT16_MAX */
} mh_snap_traceback_t;

typedef struct {
    uint32_t filename; /* string index */
    uint32_t function; /* string index */
    int32_t lineno;    /* 0 when unknown */
} mh_snap_frame_t;

typedef struct mh_snapdata {
    mh_snap_block_t *blocks;
    size_t nblocks;
    mh_snap_traceback_t *tracebacks;
    size_t ntracebacks;
    uint32_t *frame_ids;
    size_t nframe_ids;
    mh_snap_frame_t *frames;
    size_t nframes;
    uint64_t *string_offsets; /* nstrings + 1 entries */
    char *string_data;
    size_t nstrings;
    size_t string_bytes;

    /* Header facts. */
    uint32_t traceback_limit; /* depth tracing was started with */
    uint64_t sample_mean;     /* 0: every block traced; else the mean bytes
                                 between samples (Poisson sampling) */
    double timestamp;         /* seconds since the epoch when taken */
    uint32_t python_hexversion;

    /* Optional text that travels with the snapshot (the file's attributes
     * section), opaque here: the tracemalloc facade stores the attributes
     * set on its Snapshot objects as JSON.  NULL when there is none; else
     * attributes_len bytes, not NUL-terminated, owned (rawmem.h). */
    char *attributes;
    size_t attributes_len;

    /* Allocated capacities, for the append helpers only. */
    size_t blocks_cap, tracebacks_cap, frame_ids_cap, frames_cap;
    size_t strings_cap, string_bytes_cap;
} mh_snapdata_t;

/* A new, empty snapshot holding only the empty traceback 0 and the empty
 * string 0.  Returns NULL when out of memory. */
mh_snapdata_t *mh_snapdata_new(void);

/* Free a snapshot and everything it owns.  NULL is allowed.  Can't fail. */
void mh_snapdata_free(mh_snapdata_t *snap);

/* Replace the attributes text by a copy of utf8[0..len), or remove it
 * when utf8 is NULL (len is then ignored); a non-NULL utf8 with len 0 is
 * an empty text, which is not the same as none.  Returns 0, or -1 with the
 * snapshot unchanged when len exceeds MH_SNAPDATA_MAX_ATTRIBUTES or memory
 * runs out (the copy comes from rawmem.h); removing can't fail.  Does not
 * check UTF-8: mh_snapdata_validate does. */
int mh_snapdata_set_attributes(mh_snapdata_t *snap, const char *utf8,
                               size_t len);

/* Check every invariant listed above.  Returns NULL when the data is
 * consistent, else a static message naming the first violation. */
const char *mh_snapdata_validate(const mh_snapdata_t *snap);

/* Bytes of memory the snapshot holds, for overhead reporting. */
size_t mh_snapdata_memory(const mh_snapdata_t *snap);

/* Append helpers used by builders (snapshot.c, snapfile_decode.c, tests).
 * Each returns the new element's index, or -1 when out of memory or when
 * an index would no longer fit its field.  They do not validate
 * cross-references: call mh_snapdata_validate when done. */
int64_t mh_snapdata_add_string(mh_snapdata_t *snap, const char *utf8,
                               size_t len);
int64_t mh_snapdata_add_frame(mh_snapdata_t *snap, uint32_t filename,
                              uint32_t function, int32_t lineno);
/* Adds a traceback whose frames (innermost first) are frame indices. */
int64_t mh_snapdata_add_traceback(mh_snapdata_t *snap,
                                  const uint32_t *frame_ids, uint16_t nframe,
                                  uint16_t total_nframe);
/* Reserve room for n more blocks; returns 0 or -1 when out of memory. */
int mh_snapdata_reserve_blocks(mh_snapdata_t *snap, size_t n);
int mh_snapdata_add_block(mh_snapdata_t *snap, const mh_snap_block_t *block);

/* Estimated bytes and blocks that a sampled block of `size` bytes stands
 * for: with Poisson sampling of mean `sample_mean` bytes, a block of s bytes
 * is sampled with probability p = 1 - exp(-s / mean), so each sampled block
 * weighs 1/p (Horvitz-Thompson, unbiased).  With sample_mean 0 the weight is
 * 1.  Can't fail. */
double mh_snapdata_block_weight(uint64_t sample_mean, uint64_t size);

#endif /* MH_SNAPDATA_H */
