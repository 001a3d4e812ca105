include(GoogleTest)

# vireo_unit_test(NAME source.cc... LIBS lib...): one gtest binary, label "unit".
function(vireo_unit_test name)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
endfunction()

# vireo_with_kvm(<out> [CPUS n] [MEMORY mib] [TIMEOUT s] [NEEDS bridge|linux...]): the
# command every test labelled kvm starts with, and every test that needs the
# kernel's bridges (NEEDS bridge); NEEDS linux: the test boots an unmodified
# Linux kernel, which a KVM without hardware virtualization (PVM) cannot run.
# scripts/with-kvm runs the test on this host when it
# has what the test needs or, where it has not, in an emulated machine of its
# own (docs/testing.md) with n vCPUs (default 1) and mib MiB (default 6144).
# Give such a test PROCESSORS n, so that ctest -j never asks for more emulated
# vCPUs than the host has cores. TIMEOUT s: the test's ctest TIMEOUT; the
# emulated machine gets 10 s less, so that its runner stops it and removes its
# files before ctest's SIGKILL would leave them behind.
function(vireo_with_kvm out)
  cmake_parse_arguments(ARG "" "CPUS;MEMORY;TIMEOUT" "NEEDS" ${ARGN})
  if(NOT ARG_CPUS)
    set(ARG_CPUS 1)
  endif()
  if(NOT ARG_MEMORY)
    set(ARG_MEMORY 6144)
  endif()
  set(needs "")
  foreach(need IN LISTS ARG_NEEDS)
    list(APPEND needs --needs ${need})
  endforeach()
  set(timeout "")
  if(ARG_TIMEOUT GREATER 10)
    math(EXPR runner_timeout "${ARG_TIMEOUT} - 10")
    set(timeout --timeout ${runner_timeout})
  endif()
  set(${out} ${PROJECT_SOURCE_DIR}/scripts/with-kvm --vireo $<TARGET_FILE:vireo> ${needs}
             --cpus ${ARG_CPUS} --memory ${ARG_MEMORY} ${timeout} -- PARENT_SCOPE)
endfunction()
