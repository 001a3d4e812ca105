#include "arch/x86/interrupt_wiring.h"

#include <algorithm>

namespace vireo::x86 {

uint32_t ioapic_pin_of(uint8_t irq) {
    for (const IsaInterrupt& line : kIsaInterrupts) {
        if (line.irq == irq) {
            return line.ioapic_pin;
        }
    }
    return irq;
}

std::vector<IrqchipRoute> irqchip_routes() {
    using Chip = IrqchipRoute::Chip;
    std::vector<IrqchipRoute> routes;
    for (uint32_t irq = 0; irq < kIsaIrqs; ++irq) {
        if (irq != kCascadeIrq) {
            routes.push_back({irq, irq < 8 ? Chip::PicMaster : Chip::PicSlave, irq % 8});
        }
    }
    for (uint32_t irq = 0; irq < kIsaIrqs; ++irq) {
        uint32_t pin = ioapic_pin_of(static_cast<uint8_t>(irq));
        bool taken = std::any_of(
            kIsaInterrupts.begin(), kIsaInterrupts.end(),
            [&](const IsaInterrupt& line) { return line.irq != irq && line.ioapic_pin == pin; });
        if (!taken) {
            routes.push_back({irq, Chip::IoApic, pin});
        }
    }
    for (uint32_t pin = kIsaIrqs; pin < kIoApicPins; ++pin) {
        routes.push_back({pin, Chip::IoApic, pin});
    }
    return routes;
}

}  // namespace vireo::x86
