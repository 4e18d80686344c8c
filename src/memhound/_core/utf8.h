/* utf8.h: the UTF-8 check of the snapshot format's strings.
 *
 * Strict UTF-8 (no overlong forms, nothing above U+10FFFF) except that
 * surrogates are accepted, because snapshots keep the file names Python
 * hands them with "surrogatepass".  The writer and the reader apply the same
 * check, so whatever one writes the other reads.  No state, no allocation,
 * Python-free, any thread.
 */
#ifndef MH_UTF8_H
#define MH_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Index of the first byte that breaks UTF-8 in s[0..n), or n when all of
 * it is valid (s may be NULL when n is 0).  A sequence cut off by the end
 * counts as breaking at its first byte.  Surrogates (U+D800..U+DFFF, ED
 * A0..BF xx) are valid; overlong forms and code points above U+10FFFF are
 * not.  Reads nothing outside s[0..n); time O(n).  Can't fail. */
size_t mh_utf8_check(const uint8_t *s, size_t n);

#endif /* MH_UTF8_H */
