#include "exit.h"

#include "io.h"
#include "printf.h"
#include "ring0.h"

void exit(int code) {
    outl(DEBUG_EXIT_PORT, (uint32_t)code);
    /* No exit device: say so and stop this CPU. */
    printf_unlocked("exit(%d): port 0x%x had no effect, halting\n", code, DEBUG_EXIT_PORT);
    r0_halt_forever();
}
