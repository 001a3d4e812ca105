# Warnings are errors for project code; guest code adds its own freestanding flags.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Wimplicit-fallthrough
                    $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast>)

# GCC 12 at -O3 (a Release build) reports -Wrestrict inside libstdc++'s own
# std::string operator+ (GCC bug 105651, fixed in 13); it stays a warning there.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wno-error=restrict>)
endif()

# GCC 12 with -fsanitize=address reports -Wmaybe-uninitialized inside
# Boost.Beast's HTTP parser (a boost::optional returned as boost::none); the
# files that include Beast keep it as a warning.
function(vireo_allow_beast_warnings)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS -Wno-error=maybe-uninitialized)
  endif()
endfunction()
