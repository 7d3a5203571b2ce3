# payload.cmake - the reading JSON benchmark (decode -> values object -> reading
# payload); include()d from tests/bench/CMakeLists.txt.
# Run: <build>/tests/bench/bench_payload [rounds] (use a Release build for figures).
add_executable(bench_payload ${CMAKE_CURRENT_LIST_DIR}/bench_payload.c)
target_link_libraries(bench_payload PRIVATE estate_gateway)
