/* fnmatch.h: glob matching as Python's fnmatch.fnmatchcase, for the file
 * name patterns of trace filters (tracemalloc's Filter).
 *
 * Not POSIX fnmatch(3): no flags, no escapes, no special '/' or leading
 * '.', and it matches code points, not bytes.  This header shadows the
 * system's <fnmatch.h> for files built with -I on this directory; nothing
 * here uses the system one.  No state, no allocation, Python-free, safe
 * from any thread.
 */
#ifndef MH_FNMATCH_H
#define MH_FNMATCH_H

#include <stddef.h>

/* 1 when name[0..name_len) matches pattern, else 0, with the semantics of
 * Python's fnmatch.fnmatchcase(name, pattern) (CPython 3.9-3.13 agree): '*'
 * matches any run of characters (newlines included), '?' any one character,
 * '[seq]' and '[!seq]' a character in / not in seq, with ranges "a-z"; a '['
 * with no closing ']' is a literal; everything else matches itself, case
 * sensitively.  Sets follow fnmatch.translate to the letter, quirks
 * included (reversed ranges removed, a '!' they leave first negating; see
 * fnmatch.c).
 *
 * Characters are code points: pattern (NUL-terminated) and name are
 * UTF-8.  A lead byte C2..F4 with its continuation bytes is one character
 * (surrogates included; overlong 3- and 4-byte forms are not rejected);
 * any other byte counts as one character (U+DC00 + byte, as
 * surrogateescape decodes it), so every input has a meaning.  name_len,
 * not a NUL, ends the name, which may hold NUL bytes.  Both are borrowed
 * for the call.
 *
 * Time O(len(pattern) * len(name)) at worst (no exponential backtracking),
 * no allocation, no recursion.  Can't fail. */
int mh_fnmatch_match(const char *pattern, const char *name, size_t name_len);

#endif /* MH_FNMATCH_H */
