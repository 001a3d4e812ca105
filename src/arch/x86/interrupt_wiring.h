#pragma once

#include <array>
#include <cstdint>
#include <vector>

// How the machine's legacy interrupts are wired, in one place: the MADT's
// interrupt source overrides, the DSDT and FADT, KVM's GSI routing table and
// the device models all read it, so what the guest is told is what happens.
//
// A PC has two interrupt controllers side by side. The 8259 PICs take ISA
// IRQs 0..15 (IRQ 2 is the cascade to the second PIC); the IOAPIC has 24 pins,
// whose numbers ACPI calls GSIs. An ISA IRQ arrives at the IOAPIC pin of the
// same number, edge-triggered and active high, unless the MADT says otherwise
// with an interrupt source override. Ours has two, as QEMU's and most PCs' do:
// the PIT's IRQ 0 is wired to pin 2, and the ACPI SCI (IRQ 9) is level-triggered.
//
// A device model raises its ISA IRQ number (KVM_IRQ_LINE takes it as a KVM
// "GSI"); KVM's routing table then drives both the PIC input and the IOAPIC
// pin of that IRQ. KVM's in-kernel PIT raises IRQ 0.
//
// Absent, and so not described to the guest: the HPET, the second serial
// port, the RTC's alarm interrupt (IRQ 8) and PCI INTx (devices use MSI-X).
namespace vireo::x86 {

enum class Trigger : uint8_t { Edge, Level };
enum class Polarity : uint8_t { ActiveHigh, ActiveLow };

struct IsaInterrupt {
    const char* device;
    uint8_t irq;          // ISA IRQ: the PIC input and what the device model raises
    uint32_t ioapic_pin;  // the ACPI GSI it arrives at
    Trigger trigger;
    Polarity polarity;

    // Whether the MADT must describe it with an interrupt source override
    // (anything but the ISA default: same pin, edge, active high).
    constexpr bool needs_override() const {
        return ioapic_pin != irq || trigger != Trigger::Edge || polarity != Polarity::ActiveHigh;
    }
};

inline constexpr IsaInterrupt kPitInterrupt{"PIT", 0, 2, Trigger::Edge, Polarity::ActiveHigh};
inline constexpr IsaInterrupt kCom1Interrupt{"COM1", 4, 4, Trigger::Edge, Polarity::ActiveHigh};
inline constexpr IsaInterrupt kSciInterrupt{"ACPI SCI", 9, 9, Trigger::Level, Polarity::ActiveHigh};
inline constexpr std::array kIsaInterrupts{kPitInterrupt, kCom1Interrupt, kSciInterrupt};

inline constexpr uint32_t kIsaIrqs = 16;
inline constexpr uint32_t kCascadeIrq = 2;
// GSIs 0..23 are the IOAPIC pins; MSI routes use GSIs from here on.
inline constexpr uint32_t kIoApicPins = 24;
inline constexpr uint32_t kFirstMsiGsi = 24;

// One entry of KVM's routing table for the irqchips: interrupt number `gsi`
// (an ISA IRQ, or 16..23 for the IOAPIC's upper pins) drives `pin` of `chip`.
struct IrqchipRoute {
    enum class Chip : uint8_t { PicMaster, PicSlave, IoApic };
    uint32_t gsi;
    Chip chip;
    uint32_t pin;

    friend bool operator==(const IrqchipRoute&, const IrqchipRoute&) = default;
};

// The routes for the wiring above: every ISA IRQ but the cascade to its PIC
// input, and to its IOAPIC pin (the override's pin where there is one; an IRQ
// whose pin another IRQ took, such as IRQ 2 when IRQ 0 is on pin 2, reaches
// no IOAPIC pin); interrupts 16..23 to IOAPIC pins 16..23.
std::vector<IrqchipRoute> irqchip_routes();

// The IOAPIC pin an ISA IRQ arrives at.
uint32_t ioapic_pin_of(uint8_t irq);

}  // namespace vireo::x86
