# Warnings are errors for project code; guest code adds its own freestanding flags.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Wimplicit-fallthrough
                    $<$<COMPILE_LANGUAGE:CXX>:-Wold-style-cast>)
