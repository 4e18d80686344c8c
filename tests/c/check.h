/* check.h: the one assertion of memhound's plain-C tests.
 *
 * CHECK(expr) counts a pass or a failure (printing file, line and the
 * expression) and evaluates to whether expr held, so a test can stop
 * following a pointer that came back wrong.  After 50 failures the program
 * gives up.  Each test program ends with check_report(), which prints the
 * "N passed, N failed" line CI reads and gives main's exit status.
 */
#ifndef MH_TEST_CHECK_H
#define MH_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static long passed;
static long failed;

static inline int
check(int ok, const char *expr, const char *file, int line)
{
    if (ok) {
        passed++;
        return 1;
    }
    failed++;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
    if (failed > 50) {
        fprintf(stderr, "too many failures, giving up\n");
        exit(1);
    }
    return 0;
}

#define CHECK(expr) check((expr) != 0, #expr, __FILE__, __LINE__)

/* Print the closing line for test program `name`; returns main's status. */
static inline int
check_report(const char *name)
{
    printf("%s: %ld passed, %ld failed\n", name, passed, failed);
    return failed != 0;
}

#endif /* MH_TEST_CHECK_H */
