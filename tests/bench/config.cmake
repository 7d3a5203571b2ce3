# config.cmake - the configuration memory benchmark; include()d from tests/bench/CMakeLists.txt.
# Run: <build>/tests/bench/bench_config [meters] (heap the loaded config holds).
add_executable(bench_config ${CMAKE_CURRENT_LIST_DIR}/bench_config.c)
target_link_libraries(bench_config PRIVATE estate_gateway)
