# ctest tests that boot each guest-kit guest under QEMU/KVM (microvm, and one
# q35 run), through scripts/with-kvm like every test labelled kvm. Labels
# "kvm;qemu"; skipped (exit 77) without a usable /dev/kvm or without
# qemu-system-x86_64. include() this file from a CMakeLists.txt
# processed after guest/. The label qemu says that no Vireo code runs in the
# test: the sanitized run (scripts/test.sh --sanitize) leaves such tests out.
find_program(VIREO_QEMU qemu-system-x86_64)
set(VIREO_GUEST_RUN ${PROJECT_SOURCE_DIR}/guest/run-in-qemu.sh)
set(VIREO_GUEST_CHECK ${PROJECT_SOURCE_DIR}/guest/check-guest-run.sh)

# The conformance initrd: 4 KiB of text, and its FNV-1a 32-bit hash.
set(VIREO_GUEST_INITRD ${CMAKE_BINARY_DIR}/guest/conformance-initrd.bin)
set(initrd_text "")
foreach(i RANGE 1 256)
  string(APPEND initrd_text "vireo initrd line ${i}\n")
endforeach()
string(SUBSTRING "${initrd_text}" 0 4096 initrd_text)
string(LENGTH "${initrd_text}" initrd_size)
file(WRITE ${VIREO_GUEST_INITRD} "${initrd_text}")
file(READ ${VIREO_GUEST_INITRD} initrd_hex HEX)
set(initrd_fnv 2166136261)
math(EXPR last "${initrd_size} - 1")
foreach(i RANGE 0 ${last})
  math(EXPR at "${i} * 2")
  string(SUBSTRING "${initrd_hex}" ${at} 2 byte)
  math(EXPR initrd_fnv "((${initrd_fnv} ^ 0x${byte}) * 16777619) & 0xffffffff")
endforeach()
math(EXPR initrd_fnv "${initrd_fnv}" OUTPUT_FORMAT HEXADECIMAL)

# vireo_guest_qemu_test(<test name> <guest> [MACHINE microvm|q35] [TIMEOUT s]
#                       [CHECK <check-guest-run.sh options>...] [QEMU <qemu args>...])
function(vireo_guest_qemu_test name guest)
  cmake_parse_arguments(ARG "" "MACHINE;TIMEOUT" "CHECK;QEMU" ${ARGN})
  if(NOT ARG_MACHINE)
    set(ARG_MACHINE microvm)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  # Room for an emulated machine to boot, and to boot once more after a fault.
  math(EXPR ctest_timeout "${ARG_TIMEOUT} + 90")
  if(VIREO_QEMU)
    vireo_with_kvm(launcher TIMEOUT ${ctest_timeout})
    add_test(NAME ${name}
             COMMAND ${launcher} ${VIREO_GUEST_CHECK} --timeout ${ARG_TIMEOUT} ${ARG_CHECK} --
                     ${VIREO_GUEST_RUN} ${ARG_MACHINE} ${CMAKE_BINARY_DIR}/guest/${guest}.elf ${ARG_QEMU})
  else()
    add_test(NAME ${name} COMMAND sh -c "echo 'SKIP: qemu-system-x86_64 is not installed'; exit 77")
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "kvm;qemu" SKIP_RETURN_CODE 77 TIMEOUT ${ctest_timeout}
                                          ENVIRONMENT "QEMU=${VIREO_QEMU}")
endfunction()

vireo_guest_qemu_test(guest_qemu_smoke smoke
    QEMU -smp 2 -append "vireo.cpus=2 vireo.mem_mib=256")
vireo_guest_qemu_test(guest_qemu_q35_smoke smoke MACHINE q35 TIMEOUT 120
    QEMU -smp 2 -append "vireo.cpus=2 vireo.mem_mib=256")
vireo_guest_qemu_test(guest_qemu_demo demo
    CHECK --no-summary --expect-exit 0 --expect-line "^Hello from a Vireo guest" --expect-line "^Powering off")
# QEMU microvm has no MCFG and an unsorted PVH memory map with an empty entry.
vireo_guest_qemu_test(guest_qemu_boot_conformance boot_conformance
    QEMU -smp 2 -initrd ${VIREO_GUEST_INITRD}
         -append "vireo.cpus=2 vireo.mem_mib=256 vireo.initrd_size=${initrd_size} vireo.initrd_sum=${initrd_fnv} vireo.no_mcfg vireo.loose_memmap")
vireo_guest_qemu_test(guest_qemu_smp smp
    CHECK --expect-line "^AP 3 up"
    QEMU -smp 4 -append "vireo.cpus=4")
# q35, not microvm: the timers guest needs the PIT and the FADT's PM timer, and
# the TSC-deadline timer, which QEMU's default model lacks: added to it rather
# than -cpu host, which some KVMs refuse (a PVM build rejects the
# ARCH_CAPABILITIES value QEMU's host model writes).
vireo_guest_qemu_test(guest_qemu_timers timers MACHINE q35 TIMEOUT 120
    QEMU -cpu qemu64,+tsc-deadline)
vireo_guest_qemu_test(guest_qemu_uart_echo uart_echo
    CHECK --input "hello\\nsecond line\\nquit\\n" --expect-line "^echo: hello$" --expect-line "^echo: second line$"
    QEMU -append "vireo.echo_lines=2")
vireo_guest_qemu_test(guest_qemu_virtio_rng virtio_rng
    QEMU -device virtio-rng-pci,disable-legacy=on)
# QEMU completes a buffer outside guest RAM without flagging the device.
vireo_guest_qemu_test(guest_qemu_virtio_hostile virtio_hostile
    QEMU -device virtio-rng-pci,disable-legacy=on -append "vireo.hostile_expect=chains")
vireo_guest_qemu_test(guest_qemu_exit_bench exit_bench
    CHECK --expect-line "^BENCH pio_ring0_cycles=[0-9]+$" --expect-line "^BENCH mmio_ring3_cycles=[0-9]+$"
          --expect-line "^BENCH notify_ring0_cycles=[0-9]+$"
    QEMU -device virtio-rng-pci,disable-legacy=on -append "bench.iters=200")
