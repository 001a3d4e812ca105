#include "exit.h"

#include "io.h"
#include "printf.h"

void exit(int code) {
    outl(DEBUG_EXIT_PORT, (uint32_t)code);
    /* No exit device: say so and stop. hlt is privileged, so spin in ring 3. */
    printf_unlocked("exit(%d): port 0x%x had no effect, halting\n", code, DEBUG_EXIT_PORT);
    for (;;) asm volatile("pause");
}
