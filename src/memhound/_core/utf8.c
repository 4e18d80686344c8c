/* utf8.c: UTF-8 validation for the snapshot format's strings (see
 * utf8.h for what counts as valid and why surrogates do).
 *
 * Checks one sequence at a time from its lead byte, which fixes both its
 * length and the range of its second byte (that range is what excludes
 * overlong forms and code points above U+10FFFF).  No state, no
 * allocation, Python-free, any thread.
 */
#include "utf8.h"

size_t
mh_utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        }
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) {
                lo = 0xA0;
            }
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) {
                lo = 0x90;
            }
            else if (c == 0xF4) {
                hi = 0x8F;
            }
        }
        else {
            return i;
        }
        if (n - i - 1 < need) {
            return i;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return i;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return i;
            }
        }
        i += need + 1;
    }
    return n;
}
