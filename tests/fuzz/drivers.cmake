# drivers.cmake - the drivers' fuzz harnesses (decoders, read planner, RTU
# framing, DL/T 645 and CJ/T 188 receivers, model file loader). The model
# loader's corpus is corpus/model (broken files) and every shipped model in etc/models.
# include()d from tests/fuzz/CMakeLists.txt. Always builds replay executables
# that run each seed corpus under CTest (fuzz.replay_<name>); with
# ESTATE_FUZZ=ON and clang also builds the libFuzzer targets fuzz_<name>:
#   CC=clang cmake -S . -B build-fuzz -DESTATE_FUZZ=ON
#   build-fuzz/tests/fuzz/fuzz_decode tests/fuzz/corpus/decode
set(estate_drivers_fuzzers decode plan rtu_frame dlt645 cjt188 model)
set(estate_drivers_fuzz_extra_model ${ESTATE_SOURCE_DIR}/etc/models)
set(estate_drivers_fuzz_dir ${CMAKE_CURRENT_LIST_DIR})

foreach(name ${estate_drivers_fuzzers})
  add_executable(fuzz_replay_${name} ${estate_drivers_fuzz_dir}/fuzz_${name}.c
                 ${estate_drivers_fuzz_dir}/fuzz_replay_main.c)
  target_link_libraries(fuzz_replay_${name} PRIVATE estate_drivers)
  add_test(NAME fuzz.replay_${name}
           COMMAND fuzz_replay_${name} ${estate_drivers_fuzz_dir}/corpus/${name}
                   ${estate_drivers_fuzz_extra_${name}})
  set_tests_properties(fuzz.replay_${name} PROPERTIES TIMEOUT 120)
endforeach()

if(ESTATE_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    # Coverage feedback needs the library instrumented too.
    target_compile_options(estate_drivers PRIVATE -fsanitize=fuzzer-no-link)
    foreach(name ${estate_drivers_fuzzers})
      add_executable(fuzz_${name} ${estate_drivers_fuzz_dir}/fuzz_${name}.c)
      target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_libraries(fuzz_${name} PRIVATE estate_drivers)
    endforeach()
  else()
    message(WARNING "ESTATE_FUZZ needs clang (libFuzzer); building only the corpus replays")
  endif()
endif()
