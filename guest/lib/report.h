/* kvm-unit-tests style results: one "PASS: ..." / "FAIL: ..." / "SKIP: ..."
 * line per check, and one "SUMMARY: <n> tests, <f> failures" line at the end. */
#pragma once

#include <stdbool.h>

/* Returns cond, so a test can stop early on a failed precondition. */
bool report(bool cond, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void report_skip(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void report_info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the summary and exits: code 0 if nothing failed, 1 otherwise. */
void report_summary(void) __attribute__((noreturn));
/* Fails the run at once (with a summary) when a precondition is missing. */
void report_abort(const char* fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
