if(VIREO_SANITIZE OR VIREO_FUZZ)
  set(VIREO_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                            -fno-omit-frame-pointer)
  add_compile_options(${VIREO_SANITIZER_FLAGS})
  add_link_options(${VIREO_SANITIZER_FLAGS})
endif()
if(VIREO_FUZZ)
  # Coverage for the libraries; fuzz/ links the libFuzzer main itself.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
