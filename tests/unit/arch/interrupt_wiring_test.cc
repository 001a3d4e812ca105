#include "arch/x86/interrupt_wiring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

namespace vireo::x86 {
namespace {

using Chip = IrqchipRoute::Chip;

std::optional<uint32_t> ioapic_pin_for(const std::vector<IrqchipRoute>& routes, uint32_t gsi) {
    for (const IrqchipRoute& route : routes) {
        if (route.gsi == gsi && route.chip == Chip::IoApic) {
            return route.pin;
        }
    }
    return std::nullopt;
}

// KVM's in-kernel PIT raises interrupt 0; the MADT tells the guest it arrives
// at IOAPIC pin 2. The route must agree, or Linux's timer check fails
// ("APIC timer disabled due to verification failure") and sleep never ends.
TEST(InterruptWiring, ThePitReachesTheIoapicPinTheMadtNames) {
    std::vector<IrqchipRoute> routes = irqchip_routes();
    EXPECT_EQ(ioapic_pin_for(routes, kPitInterrupt.irq), kPitInterrupt.ioapic_pin);
    EXPECT_EQ(kPitInterrupt.ioapic_pin, 2u);
    EXPECT_TRUE(kPitInterrupt.needs_override());
}

TEST(InterruptWiring, NothingElseDrivesThePitsPinAndIoapicPinZeroIsUnused) {
    std::vector<IrqchipRoute> routes = irqchip_routes();
    EXPECT_EQ(ioapic_pin_for(routes, kCascadeIrq), std::nullopt);
    for (const IrqchipRoute& route : routes) {
        if (route.chip == Chip::IoApic) {
            EXPECT_NE(route.pin, 0u) << "interrupt " << route.gsi;
            if (route.pin == 2) {
                EXPECT_EQ(route.gsi, 0u);
            }
        }
    }
}

TEST(InterruptWiring, EveryIsaIrqButTheCascadeDrivesItsPicInput) {
    std::vector<IrqchipRoute> routes = irqchip_routes();
    for (uint32_t irq = 0; irq < kIsaIrqs; ++irq) {
        IrqchipRoute expected{irq, irq < 8 ? Chip::PicMaster : Chip::PicSlave, irq % 8};
        bool found = std::find(routes.begin(), routes.end(), expected) != routes.end();
        EXPECT_EQ(found, irq != kCascadeIrq) << "IRQ " << irq;
    }
}

TEST(InterruptWiring, OtherInterruptsKeepTheirOwnPin) {
    std::vector<IrqchipRoute> routes = irqchip_routes();
    EXPECT_EQ(ioapic_pin_for(routes, kCom1Interrupt.irq), 4u);
    EXPECT_EQ(ioapic_pin_for(routes, kSciInterrupt.irq), 9u);
    for (uint32_t gsi = 16; gsi < kIoApicPins; ++gsi) {
        EXPECT_EQ(ioapic_pin_for(routes, gsi), gsi);
    }
    EXPECT_EQ(ioapic_pin_for(routes, kIoApicPins), std::nullopt);
    EXPECT_FALSE(kCom1Interrupt.needs_override());
    EXPECT_TRUE(kSciInterrupt.needs_override()) << "level-triggered";
}

TEST(InterruptWiring, NoInterruptNumberIsRoutedTwiceToTheSameChip) {
    std::vector<IrqchipRoute> routes = irqchip_routes();
    for (size_t i = 0; i < routes.size(); ++i) {
        for (size_t j = i + 1; j < routes.size(); ++j) {
            bool same_kind = (routes[i].chip == Chip::IoApic) == (routes[j].chip == Chip::IoApic);
            EXPECT_FALSE(routes[i].gsi == routes[j].gsi && same_kind) << routes[i].gsi;
        }
    }
}

}  // namespace
}  // namespace vireo::x86
