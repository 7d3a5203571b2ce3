# commands.cmake - fuzz harness for command handling (gw_commands_handle on a
# real core with a scratch store). The corpus replay runs under CTest as
# fuzz.replay_command; with ESTATE_FUZZ=ON and clang, fuzz_command is a
# libFuzzer target with the gateway library instrumented for coverage.
set(estate_commands_fuzz_dir ${CMAKE_CURRENT_LIST_DIR})
add_executable(fuzz_replay_command ${estate_commands_fuzz_dir}/fuzz_command.c
               ${estate_commands_fuzz_dir}/fuzz_replay_main.c)
target_link_libraries(fuzz_replay_command PRIVATE estate_gateway)
add_test(NAME fuzz.replay_command
         COMMAND fuzz_replay_command ${estate_commands_fuzz_dir}/corpus/command)
set_tests_properties(fuzz.replay_command PROPERTIES TIMEOUT 120
                     ENVIRONMENT "ESTATE_SOURCE_DIR=${ESTATE_SOURCE_DIR}")

if(ESTATE_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  foreach(part config store views office pipeline)
    target_compile_options(estate_gw_${part} PRIVATE -fsanitize=fuzzer-no-link)
  endforeach()
  add_executable(fuzz_command ${estate_commands_fuzz_dir}/fuzz_command.c)
  target_compile_options(fuzz_command PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_command PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_command PRIVATE estate_gateway)
endif()
