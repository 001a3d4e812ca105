/* Leaving the VM: port 0xf4 (isa-debug-exit); the VMM exits with (code << 1) | 1. */
#pragma once

#include <stdint.h>

#define DEBUG_EXIT_PORT 0xf4
/* Exit code for an unexpected exception or a failed assertion (as kvm-unit-tests' abort). */
#define EXIT_ABORT 64

void exit(int code) __attribute__((noreturn));
