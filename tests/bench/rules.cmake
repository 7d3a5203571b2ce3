# rules.cmake - the rule engine benchmark; include()d from tests/bench/CMakeLists.txt.
# Run: <build>/tests/bench/bench_rules [meters] [rounds] (use a Release build for figures).
add_executable(bench_rules ${CMAKE_CURRENT_LIST_DIR}/bench_rules.c)
target_link_libraries(bench_rules PRIVATE estate_rules)
