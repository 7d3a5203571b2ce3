# config.cmake - fuzz harnesses of the configuration loader (fuzz_config) and
# the meters CSV reader (fuzz_csv). include()d from tests/fuzz/CMakeLists.txt.
# Always builds replay executables that run each seed corpus under CTest
# (fuzz.replay_config, fuzz.replay_csv); with ESTATE_FUZZ=ON and clang also
# the libFuzzer targets:
#   CC=clang cmake -S . -B build-fuzz -DESTATE_FUZZ=ON
#   build-fuzz/tests/fuzz/fuzz_config tests/fuzz/corpus/config
# The code under test (gateway/config/config.c, gateway/config/csv.c) is compiled into each
# harness rather than taken from estate_gateway: the harness does not depend
# on the rest of the gateway, and instrumenting it for libFuzzer leaves the
# shared library (and the programs linking it) untouched.
set(estate_config_fuzzers config csv)
set(estate_config_fuzz_dir ${CMAKE_CURRENT_LIST_DIR})
set(estate_config_fuzz_sources ${ESTATE_SOURCE_DIR}/gateway/config/config.c
    ${ESTATE_SOURCE_DIR}/gateway/config/csv.c)

function(estate_config_fuzz_target target harness)
  add_executable(${target} ${harness} ${estate_config_fuzz_sources} ${ARGN})
  target_include_directories(${target} PRIVATE ${ESTATE_SOURCE_DIR}/gateway/config)
  target_link_libraries(${target} PRIVATE estate_drivers estate_rules estate_common
                        PkgConfig::LIBCONFIG m)
endfunction()

foreach(name ${estate_config_fuzzers})
  estate_config_fuzz_target(fuzz_replay_${name} ${estate_config_fuzz_dir}/fuzz_${name}.c
                            ${estate_config_fuzz_dir}/fuzz_replay_main.c)
  add_test(NAME fuzz.replay_${name}
           COMMAND fuzz_replay_${name} ${estate_config_fuzz_dir}/corpus/${name})
  set_tests_properties(fuzz.replay_${name} PROPERTIES TIMEOUT 120
    ENVIRONMENT "ESTATE_SOURCE_DIR=${ESTATE_SOURCE_DIR}")
endforeach()

if(ESTATE_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  foreach(name ${estate_config_fuzzers})
    estate_config_fuzz_target(fuzz_${name} ${estate_config_fuzz_dir}/fuzz_${name}.c)
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  endforeach()
endif()
