# config.cmake - fuzz harnesses of the configuration loader (fuzz_config) and
# the meters CSV reader (fuzz_csv). include()d from tests/fuzz/CMakeLists.txt.
# Always builds replay executables that run each seed corpus under CTest
# (fuzz.replay_config, fuzz.replay_csv); with ESTATE_FUZZ=ON and clang also
# the libFuzzer targets:
#   CC=clang cmake -S . -B build-fuzz -DESTATE_FUZZ=ON
#   build-fuzz/tests/fuzz/fuzz_config tests/fuzz/corpus/config
set(estate_config_fuzzers config csv)
set(estate_config_fuzz_dir ${CMAKE_CURRENT_LIST_DIR})

foreach(name ${estate_config_fuzzers})
  add_executable(fuzz_replay_${name} ${estate_config_fuzz_dir}/fuzz_${name}.c
                 ${estate_config_fuzz_dir}/fuzz_replay_main.c)
  target_link_libraries(fuzz_replay_${name} PRIVATE estate_gateway)
  add_test(NAME fuzz.replay_${name}
           COMMAND fuzz_replay_${name} ${estate_config_fuzz_dir}/corpus/${name})
  set_tests_properties(fuzz.replay_${name} PROPERTIES TIMEOUT 120
    ENVIRONMENT "ESTATE_SOURCE_DIR=${ESTATE_SOURCE_DIR}")
endforeach()

if(ESTATE_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  # The loader lives in estate_gateway; instrument it for coverage feedback.
  target_compile_options(estate_gateway PRIVATE -fsanitize=fuzzer-no-link)
  foreach(name ${estate_config_fuzzers})
    add_executable(fuzz_${name} ${estate_config_fuzz_dir}/fuzz_${name}.c)
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${name} PRIVATE estate_gateway)
  endforeach()
endif()
