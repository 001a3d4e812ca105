#include "report.h"

#include <stdarg.h>

#include "exit.h"
#include "printf.h"
#include "spinlock.h"

static struct spinlock report_lock;
static unsigned tests, failures, skipped;

static void line(const char* tag, const char* fmt, va_list ap) {
    char msg[400];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    printf("%s: %s\n", tag, msg);
}

bool report(bool cond, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    spin_lock(&report_lock);
    tests++;
    if (!cond)
        failures++;
    spin_unlock(&report_lock);
    line(cond ? "PASS" : "FAIL", fmt, ap);
    va_end(ap);
    return cond;
}

void report_skip(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    spin_lock(&report_lock);
    skipped++;
    spin_unlock(&report_lock);
    line("SKIP", fmt, ap);
    va_end(ap);
}

void report_info(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    line("INFO", fmt, ap);
    va_end(ap);
}

void report_summary(void) {
    if (skipped)
        printf("SUMMARY: %u tests, %u failures, %u skipped\n", tests, failures, skipped);
    else
        printf("SUMMARY: %u tests, %u failures\n", tests, failures);
    exit(failures ? 1 : 0);
}

void report_abort(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    line("ABORT", fmt, ap);
    va_end(ap);
    failures++;
    tests++;
    report_summary();
}
