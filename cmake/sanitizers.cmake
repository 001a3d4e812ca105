if(VIREO_SANITIZE)
  set(VIREO_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                            -fno-omit-frame-pointer)
  add_compile_options(${VIREO_SANITIZER_FLAGS})
  add_link_options(${VIREO_SANITIZER_FLAGS})
endif()
