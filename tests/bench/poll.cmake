# poll.cmake - the poll benchmark (bench_poll.py); include()d from tests/bench/CMakeLists.txt.
# Not a test: it prints figures and is run by hand on an idle machine, e.g.
#   cmake --build BUILD --target bench_poll_quick   # 1,000 meters, 5 s (smoke run)
#   cmake --build BUILD --target bench_poll         # 1,000 and 10,000 meters, 20 s each
# (use a Release build for figures; see docs/benchmarks.md).
find_program(ESTATE_BENCH_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT ESTATE_BENCH_PYTHON)
  find_program(ESTATE_BENCH_PYTHON python3)
endif()
if(ESTATE_BENCH_PYTHON)
  add_custom_target(bench_poll
    COMMAND ${ESTATE_BENCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/bench_poll.py --build ${CMAKE_BINARY_DIR}
    USES_TERMINAL
    COMMENT "poll benchmark: mosquitto + estate-sim --generate + estate-gw")
  add_custom_target(bench_poll_quick
    COMMAND ${ESTATE_BENCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/bench_poll.py --build ${CMAKE_BINARY_DIR} --quick
    USES_TERMINAL
    COMMENT "poll benchmark, quick: 1,000 meters for 5 s")
  add_dependencies(bench_poll estate-gw estate-sim)
  add_dependencies(bench_poll_quick estate-gw estate-sim)
endif()

# The floor under it: libmodbus alone with the same polling pattern
# (bench_poll.py --modbus-only runs it against the same simulator set-up).
add_executable(bench_modbus ${CMAKE_CURRENT_LIST_DIR}/bench_modbus.c)
target_link_libraries(bench_modbus PRIVATE PkgConfig::MODBUS Threads::Threads)
