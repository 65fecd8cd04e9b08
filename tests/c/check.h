/*
 * check.h - the assertion of the C tests: count passes and failures, say
 * what failed and where, and end with the "N passed, M failed" line that CI
 * reads. CHECK(cond) or CHECK(cond, "format", args...).
 */
#ifndef FW_TEST_CHECK_H
#define FW_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int passed, failed;

static void check_failed(const char *file, int line, const char *what,
                         const char *fmt, ...)
{
    failed++;
    fprintf(stderr, "FAIL %s:%d: %s", file, line, what);
    if (*fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond)                                                              \
            passed++;                                                          \
        else                                                                   \
            check_failed(__FILE__, __LINE__, #cond, "" __VA_ARGS__);           \
    } while (0)

/* Print the closing line; the exit status of the test program. */
static int check_summary(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
