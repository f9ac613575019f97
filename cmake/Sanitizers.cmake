# Sanitizers, one cache variable away:
#
#   cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DASYNCIO_SANITIZE=address,undefined
#   cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DASYNCIO_SANITIZE=thread
#
# asyncio_set_sanitizers(<target> [PUBLIC|PRIVATE]) adds -fsanitize=<list>
# -fno-omit-frame-pointer -fno-sanitize-recover=all to the target's compile and link lines and
# defines ASYNCIO_SANITIZED=1. The library calls it PUBLIC, so everything that links
# asyncio::asyncio (tests, examples, bench, an installed consumer) is instrumented the same way.
# ASYNCIO_SANITIZED=1 makes the library bypass its coroutine-frame recycling pool, so that ASan
# sees every use-after-free of a coroutine frame.
include_guard(GLOBAL)

if(ASYNCIO_SANITIZE)
  string(REPLACE ";" "," ASYNCIO_SANITIZE "${ASYNCIO_SANITIZE}") # accept a CMake list as well
  string(REPLACE " " "" ASYNCIO_SANITIZE "${ASYNCIO_SANITIZE}")
  if(ASYNCIO_SANITIZE MATCHES "thread" AND ASYNCIO_SANITIZE MATCHES "address|leak|memory")
    message(FATAL_ERROR "ASYNCIO_SANITIZE='${ASYNCIO_SANITIZE}': 'thread' cannot be combined "
      "with address/leak/memory; use separate build directories")
  endif()
  if(MSVC)
    message(FATAL_ERROR "ASYNCIO_SANITIZE is only supported with GCC and Clang")
  endif()
  set(ASYNCIO_SANITIZE_FLAGS
    -fsanitize=${ASYNCIO_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # clang < 15 cannot assemble template coroutines with -fsanitize=function (part of
  # 'undefined'): "Cannot represent a difference across sections".
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15
     AND ASYNCIO_SANITIZE MATCHES "undefined")
    list(APPEND ASYNCIO_SANITIZE_FLAGS -fno-sanitize=function)
  endif()
else()
  set(ASYNCIO_SANITIZE_FLAGS "")
endif()

function(asyncio_set_sanitizers target)
  set(scope PRIVATE)
  if(ARGC GREATER 1)
    set(scope ${ARGV1})
  endif()
  if(NOT ASYNCIO_SANITIZE_FLAGS)
    return()
  endif()
  target_compile_options(${target} ${scope} ${ASYNCIO_SANITIZE_FLAGS})
  target_link_options(${target} ${scope} ${ASYNCIO_SANITIZE_FLAGS})
  target_compile_definitions(${target} ${scope} ASYNCIO_SANITIZED=1)
endfunction()
