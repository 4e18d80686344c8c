/* fnmatch.c: glob matching with Python's fnmatch.fnmatchcase semantics on
 * UTF-8 code points (contract in fnmatch.h), for trace filters.
 *
 * Works on the pattern text in place: no compilation step, no allocation,
 * no state.  Every helper takes byte offsets into the pattern and never
 * reads past the pattern's NUL or name_len.  Python-free, any thread.
 */
#include "fnmatch.h"

#include <stdint.h>
#include <string.h>

/* Python's fnmatchcase translates the pattern into a regular expression;
 * we match the same language directly.  Every token except '*' matches
 * exactly one code point, so the classic matcher that backtracks only to
 * the last '*' is exact and O(len(pattern) * len(name)) at worst (Python
 * gets the same effect with atomic groups, bpo-40480).
 *
 * Sets follow fnmatch.translate (3.9-3.13 agree) to the letter, quirks
 * included: the dashes that may form ranges are found by
 * str.find('-', k) with k moving 3 code points past each one, a dash last
 * in the set is a literal, a range whose ends are reversed is removed with
 * both its ends, and the remaining text is then read by the re module, so
 * that a '!' left first after such a removal negates the set (fnmatch
 * checks stuff[0] == '!') and a range dash right after it turns literal.
 */

/* Decode one code point of s[0..n), n >= 1, and return its length.  Bytes
 * that are not UTF-8 decode one by one as U+DC00 + byte, as Python's
 * surrogateescape would, so that every input has a meaning. */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    }
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
    }
    else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
    }
    else {
        *cp = 0xdc00 + c;
        return 1;
    }
    if (len > n) {
        *cp = 0xdc00 + c;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = 0xdc00 + c;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

/* Offset after skipping n code points of p from pos, at most end. */
static size_t
skip_chars(const unsigned char *p, size_t pos, size_t end, int n)
{
    uint32_t cp;
    for (; n > 0 && pos < end; n--) {
        pos += utf8_next(p + pos, end - pos, &cp);
    }
    return pos;
}

/* Reads a set body p[pos..end) (between '[' and its ']') as the element
 * sequence of translate()'s final "stuff": literal characters and the
 * unescaped dashes joining ranges. */
typedef struct {
    const unsigned char *p;
    size_t pos, end;
    size_t search; /* str.find('-', k) restarts here (the k above) */
    int ranges;    /* the body holds a '-': translate's range branch */
} set_iter_t;

typedef struct {
    uint32_t cp;
    int join; /* an unescaped range dash */
} set_elem_t;

static void
set_iter_init(set_iter_t *it, const unsigned char *p, size_t pos, size_t end)
{
    it->p = p;
    it->pos = pos;
    it->end = end;
    it->ranges = memchr(p + pos, '-', end - pos) != NULL;
    /* k = i+2 if pat[i] == '!' else i+1 */
    it->search = skip_chars(p, pos, end, p[pos] == '!' ? 2 : 1);
}

static int
set_iter_next(set_iter_t *it, set_elem_t *e)
{
    const unsigned char *p = it->p;
    while (it->pos < it->end) {
        size_t x = it->pos;
        uint32_t c;
        size_t w = utf8_next(p + x, it->end - x, &c);
        if (it->ranges && c == '-' && x >= it->search) {
            /* A dash found by find(): it joins the chunks around it,
             * unless the chunk after it is empty (the dash is last):
             * then translate appends it to the previous chunk. */
            it->search = skip_chars(p, x, it->end, 3);
            it->pos = x + 1;
            e->cp = '-';
            e->join = it->pos < it->end;
            return 1;
        }
        size_t d = x + w;
        if (it->ranges && d + 1 < it->end && p[d] == '-' && d >= it->search) {
            /* c ends a chunk and a range starts here: translate removes a
             * reversed range with both its ends. */
            uint32_t hi;
            size_t w2 = utf8_next(p + d + 1, it->end - d - 1, &hi);
            if (c > hi) {
                it->search = skip_chars(p, d, it->end, 3);
                it->pos = d + 1 + w2;
                continue;
            }
        }
        it->pos = d;
        e->cp = c;
        e->join = 0;
        return 1;
    }
    return 0;
}

/* Whether code point cp is in the set whose body is p[body..end), read as
 * the re module reads "[" + stuff + "]". */
static int
set_contains(const unsigned char *p, size_t body, size_t end, uint32_t cp)
{
    set_iter_t it;
    set_elem_t cur, that;
    int negate = 0, found = 0, have;

    set_iter_init(&it, p, body, end);
    if (!set_iter_next(&it, &cur)) {
        return 0; /* empty stuff: "(?!)" */
    }
    if (!cur.join && cur.cp == '!') {
        negate = 1; /* "stuff[0] == '!'": '^' (just "!": any character) */
        have = set_iter_next(&it, &cur);
    }
    else {
        have = 1;
    }
    while (have) {
        uint32_t lo = cur.cp; /* even a range dash is literal here */
        have = set_iter_next(&it, &cur);
        if (have && cur.join) {
            if (!set_iter_next(&it, &that)) {
                found |= cp == lo || cp == '-'; /* "x-]" */
                break;
            }
            /* translate never leaves hi < lo (re would raise). */
            found |= lo <= cp && cp <= that.cp;
            have = set_iter_next(&it, &cur);
        }
        else {
            found |= cp == lo;
        }
    }
    return found ^ negate;
}

enum { TOK_STAR, TOK_ANY, TOK_CHAR, TOK_SET };

typedef struct {
    int kind;
    uint32_t cp;           /* TOK_CHAR */
    size_t body, body_end; /* TOK_SET: between '[' and ']' */
    size_t next;           /* offset after the token */
} token_t;

static void
next_token(const unsigned char *p, size_t plen, size_t pos, token_t *t)
{
    unsigned char c = p[pos];
    if (c == '*') {
        t->kind = TOK_STAR;
        t->next = pos + 1;
        return;
    }
    if (c == '?') {
        t->kind = TOK_ANY;
        t->next = pos + 1;
        return;
    }
    if (c == '[') {
        size_t j = pos + 1;
        if (j < plen && p[j] == '!') {
            j++;
        }
        if (j < plen && p[j] == ']') {
            j++;
        }
        while (j < plen && p[j] != ']') {
            j++;
        }
        if (j < plen) {
            t->kind = TOK_SET;
            t->body = pos + 1;
            t->body_end = j;
            t->next = j + 1;
            return;
        }
        /* No closing ']': a literal '['. */
    }
    t->kind = TOK_CHAR;
    t->next = pos + utf8_next(p + pos, plen - pos, &t->cp);
}

static int
token_matches(const unsigned char *p, const token_t *t, uint32_t cp)
{
    switch (t->kind) {
    case TOK_ANY:
        return 1;
    case TOK_CHAR:
        return t->cp == cp;
    default:
        return set_contains(p, t->body, t->body_end, cp);
    }
}

int
mh_fnmatch_match(const char *pattern, const char *name, size_t name_len)
{
    const unsigned char *p = (const unsigned char *)pattern;
    const unsigned char *s = (const unsigned char *)name;
    size_t plen = strlen(pattern);
    size_t pi = 0, si = 0;
    size_t star_pi = SIZE_MAX, star_si = 0;
    token_t t;
    uint32_t cp;

    while (si < name_len) {
        if (pi < plen) {
            next_token(p, plen, pi, &t);
            if (t.kind == TOK_STAR) {
                star_pi = pi = t.next;
                star_si = si;
                continue;
            }
            size_t w = utf8_next(s + si, name_len - si, &cp);
            if (token_matches(p, &t, cp)) {
                pi = t.next;
                si += w;
                continue;
            }
        }
        if (star_pi == SIZE_MAX) {
            return 0;
        }
        /* Let the last '*' swallow one more character and retry. */
        star_si += utf8_next(s + star_si, name_len - star_si, &cp);
        si = star_si;
        pi = star_pi;
    }
    while (pi < plen) {
        next_token(p, plen, pi, &t);
        if (t.kind != TOK_STAR) {
            return 0;
        }
        pi = t.next;
    }
    return 1;
}
