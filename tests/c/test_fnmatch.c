/* test_fnmatch.c: plain-C tests of mh_fnmatch_match (fnmatch.h).
 *
 * Ports CPython's test_fnmatch (the fnmatchcase cases: characters, sets,
 * ranges, separators, the slow-pattern cases), then checks translate()'s
 * set quirks as CPython 3.10-3.13 behave, code points rather than bytes,
 * bytes that are not UTF-8, and that name_len (not a NUL) ends the name.
 * Prints one line per failed CHECK and a final summary; exits non-zero on
 * any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnmatch.h"
#include "check.h"

static int
fm(const char *name, const char *pattern)
{
    return mh_fnmatch_match(pattern, name, strlen(name));
}

static void
char_cases(const char *pattern, const char *members, int negated)
{
    /* test_fnmatch's tescases: lowercase, digits, punctuation. */
    static const char cases[] =
        "abcdefghijklmnopqrstuvwxyz0123456789"
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    for (const char *c = cases; *c; c++) {
        int in = strchr(members, *c) != NULL;
        int got = mh_fnmatch_match(pattern, c, 1);
        if (got != (in ^ negated)) {
            fprintf(stderr, "  pattern %s char '%c': got %d\n", pattern, *c,
                    got);
        }
        CHECK(got == (in ^ negated));
    }
}

static void
test_fnmatch(void)
{
    /* test_fnmatch */
    CHECK(fm("abc", "abc"));
    CHECK(fm("abc", "?*?"));
    CHECK(fm("abc", "???*"));
    CHECK(fm("abc", "*???"));
    CHECK(fm("abc", "???"));
    CHECK(fm("abc", "*"));
    CHECK(fm("abc", "ab[cd]"));
    CHECK(fm("abc", "ab[!de]"));
    CHECK(!fm("abc", "ab[de]"));
    CHECK(!fm("a", "??"));
    CHECK(!fm("a", "b"));
    CHECK(fm("\\", "[\\]"));
    CHECK(fm("a", "[!\\]"));
    CHECK(!fm("\\", "[!\\]"));
    CHECK(fm("foo\nbar", "foo*"));
    CHECK(fm("foo\nbar\n", "foo*"));
    CHECK(!fm("\nfoo", "foo*"));
    CHECK(fm("\n", "*"));
    /* test_slow_fnmatch */
    char many[5002];
    memset(many, 'a', 5000);
    many[5000] = '\0';
    CHECK(fm(many, "*a*a*a*a*a*a*a*a*a*a"));
    many[5000] = 'b';
    many[5001] = '\0';
    CHECK(!fm(many, "*a*a*a*a*a*a*a*a*a*a*c"));
    CHECK(fm(many, "*a*a*a*a*a*a*a*a*a*a*b"));
    CHECK(!fm(many, "*a*a*a*a*a*a*a*a*a*a"));
    /* test_fnmatchcase, test_sep */
    CHECK(!fm("AbC", "abc"));
    CHECK(!fm("abc", "AbC"));
    CHECK(fm("AbC", "AbC"));
    CHECK(fm("usr/bin", "usr/bin"));
    CHECK(!fm("usr\\bin", "usr/bin"));
    CHECK(!fm("usr/bin", "usr\\bin"));
    CHECK(fm("usr\\bin", "usr\\bin"));
    /* test_char_set */
    char_cases("[az]", "az", 0);
    char_cases("[!az]", "az", 1);
    char_cases("[AZ]", "", 0);
    char_cases("[!AZ]", "", 1);
    char_cases("[aa]", "a", 0);
    char_cases("[^az]", "^az", 0);
    char_cases("[[az]", "[az", 0);
    char_cases("[!]]", "]", 1);
    CHECK(fm("[", "["));
    CHECK(fm("[]", "[]"));
    CHECK(fm("[!", "[!"));
    CHECK(fm("[!]", "[!]"));
    /* test_range */
    char_cases("[b-d]", "bcd", 0);
    char_cases("[!b-d]", "bcd", 1);
    char_cases("[b-dx-z]", "bcdxyz", 0);
    char_cases("[!b-dx-z]", "bcdxyz", 1);
    char_cases("[B-D]", "", 0);
    char_cases("[b-b]", "b", 0);
    char_cases("[!-#]", "-#", 1);
    char_cases("[!--.]", "-.", 1);
    char_cases("[^-`]", "^_`", 0);
    char_cases("[[-^]", "[\\]^", 0);
    char_cases("[\\-^]", "\\]^", 0);
    char_cases("[b-]", "-b", 0);
    char_cases("[!b-]", "-b", 1);
    char_cases("[-b]", "-b", 0);
    char_cases("[!-b]", "-b", 1);
    char_cases("[-]", "-", 0);
    char_cases("[!-]", "-", 1);
    char_cases("[d-b]", "", 0);
    char_cases("[!d-b]", "", 1);
    char_cases("[d-bx-z]", "xyz", 0);
    char_cases("[!d-bx-z]", "xyz", 1);
    char_cases("[d-b^-`]", "^_`", 0);
    char_cases("[d-b[-^]", "[\\]^", 0);
    /* test_sep_in_char_set, test_sep_in_range (POSIX) */
    CHECK(fm("/", "[/]"));
    CHECK(fm("\\", "[\\]"));
    CHECK(!fm("/", "[\\]"));
    CHECK(!fm("\\", "[/]"));
    CHECK(!fm("[/]", "[/]"));
    CHECK(!fm("[\\\\]", "[/]"));
    CHECK(fm("\\", "[\\t]"));
    CHECK(!fm("/", "[\\t]"));
    CHECK(fm("t", "[\\t]"));
    CHECK(!fm("\t", "[\\t]"));
    CHECK(fm("a/b", "a[.-0]b"));
    CHECK(!fm("a\\b", "a[.-0]b"));
    CHECK(fm("a\\b", "a[Z-^]b"));
    CHECK(!fm("a/b", "a[Z-^]b"));
    CHECK(fm("a/b", "a[/-0]b"));
    CHECK(!fm("a\\b", "a[/-0]b"));
    CHECK(!fm("a[/-0]b", "a[/-0]b"));
    CHECK(!fm("a[\\-0]b", "a[/-0]b"));
    CHECK(fm("a/b", "a[.-/]b"));
    CHECK(!fm("a\\b", "a[.-/]b"));
    CHECK(!fm("a[.-/]b", "a[.-/]b"));
    CHECK(!fm("a[.-\\]b", "a[.-/]b"));
    CHECK(fm("a\\b", "a[\\-^]b"));
    CHECK(!fm("a/b", "a[\\-^]b"));
    CHECK(!fm("a[\\-^]b", "a[\\-^]b"));

    /* translate()'s quirks, each checked against CPython 3.10-3.13. */
    char_cases("[b-a!-#]", "-#", 1); /* "[^-#]" */
    char_cases("[b-a!x]", "x", 1);   /* "[^x]" */
    char_cases("[b-a!]", "", 1);     /* "." */
    char_cases("[a-b-c]", "-abc", 0);
    char_cases("[a-b--c]", "-ab]^_c\\[`./0123456789:;<=>?@", 0);
    char_cases("[]-a]", "]^a_`", 0);
    char_cases("[!-a]", "-a", 1);
    char_cases("[a-]", "-a", 0);
    char_cases("[&~|]", "&~|", 0);
    char_cases("[a&&b]", "&ab", 0);
    CHECK(fm("x[", "x["));
    CHECK(fm("a[b", "a[b"));
    CHECK(fm("[ab", "[ab"));
    CHECK(!fm("a", "[ab"));
    CHECK(fm("]", "]"));
    CHECK(fm("a-b", "a-b"));

    /* Code points, not bytes. */
    CHECK(fm("\xc3\xa9", "?")); /* é */
    CHECK(!fm("\xc3\xa9", "??"));
    CHECK(fm("\xf0\x9f\x98\x80.py", "?.py"));     /* U+1F600 */
    CHECK(fm("\xc3\xa9", "[\xc3\xa0-\xc3\xbc]")); /* é in [à-ü] */
    CHECK(!fm("\xc3\xa9", "[!\xc3\xa9]"));
    CHECK(fm("z", "[!\xc3\xa9]"));
    CHECK(!fm("\xc3\xa9", "[z-\xc3\xa0]"));
    CHECK(fm("\xc3\xa9t\xc3\xa9", "*t?"));
    /* A surrogate passed through, as module.c decodes file names. */
    CHECK(fm("\xed\xb2\x80", "?"));
    /* Bytes that are not UTF-8 are one character each. */
    CHECK(fm("\xff\xfe", "??"));
    CHECK(fm("a\xc3", "a?"));
    /* name_len, not NUL, ends the name. */
    CHECK(mh_fnmatch_match("ab", "abc", 2));
    CHECK(mh_fnmatch_match("a?c", "a\0c", 3));
}

int
main(void)
{
    test_fnmatch();
    return check_report("test_fnmatch");
}
