# asyncio_set_warnings(<target>)
#
# The warning set for asyncio-cpp's own targets (library, tests, examples, benchmarks), never for
# third-party code and never propagated to consumers (PRIVATE). With ASYNCIO_WERROR=ON the
# warnings become errors; CI builds that way with both g++ and clang++.
include_guard(GLOBAL)

function(asyncio_set_warnings target)
  if(NOT TARGET ${target})
    message(FATAL_ERROR "asyncio_set_warnings: '${target}' is not a target")
  endif()
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 /permissive-)
    if(ASYNCIO_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
    return()
  endif()
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  # g++ 12 at -O2/-O3 misreads libstdc++'s own std::string code once it is inlined into plain
  # code such as `(i ? " " : "") + std::to_string(i)`, and reports -Wrestrict ("memcpy accessing
  # 9223372036854775809 or more bytes ... may overlap") or -Wstringop-overflow ("specified bound
  # between 9223372036854775809 and 18446744073709551615 exceeds maximum object size"): false
  # positives (GCC bug 105329 and its twins, still in 12.3). Real overlapping copies and overflows
  # are still caught at run time by ASan, in the asan stage of scripts/test.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict -Wno-stringop-overflow)
  endif()
  # clang 14 takes a coroutine that creates another call of itself (a task spawning its own
  # successor: `Coro<void> run() { co_await sleep(1); tg.create_task(run()); }`) for infinite
  # recursion; calling a coroutine function only allocates its frame, so this is a false positive.
  # g++ (-Wall includes -Winfinite-recursion since GCC 12) gets coroutines right and keeps the check.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wno-infinite-recursion)
  endif()
  if(ASYNCIO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
