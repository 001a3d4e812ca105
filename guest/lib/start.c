/* From the boot entry (ring 0) to main() (ring 3). */
#include "boot_info.h"
#include "cpu.h"
#include "exit.h"
#include "io.h"

int main(void);

static void user_start(uint64_t arg) {
    (void)arg;
    extern uint32_t boot_kind;
    extern uint64_t boot_ptr;
    boot_info_init((int)boot_kind, boot_ptr);
    exit(main());
}

/* Ring 0, called once by boot/entry.S on the BSP. Kept short: every ring-0
 * instruction is emulated on the target hosts. */
void kernel_init_bsp(void) {
    cpu_init_ring0(0);
    idt_build();
    idt_load();
    /* Mask the 8259s: an uninitialised PIC would deliver IRQ0 on vector 8. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    enter_user(user_start, percpu[0].ustack_top - 8, 0);
}
